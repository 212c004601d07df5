"""The `warden` command: dev, serve, worker, migrate, seed, check, bench, create-user."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from app.checks import refuse_unsafe_start
from app.config import ConfigurationError, Settings, explain, get_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


def _require(settings: Settings, *names: str) -> None:
    for name in names:
        if not getattr(settings, name):
            raise ConfigurationError(f"WARDEN_{name.upper()} is not set")


def served_app() -> object:
    """The app as each `warden serve --workers N` process builds it (logging first)."""
    from app.logging import configure_logging
    from app.main import create_app

    settings = get_settings()
    configure_logging("DEBUG" if settings.debug else "INFO")
    return create_app(settings)


def _serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    from app.logging import configure_logging
    from app.main import create_app

    _require(settings, "database_url", "redis_url")
    refuse_unsafe_start(settings)
    configure_logging("DEBUG" if settings.debug else "INFO")
    options: dict[str, object] = {
        "host": host,
        "port": port,
        "log_config": None,
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or None,
    }
    if workers > 1:
        # Each process builds its own app (and pools) from the same environment.
        uvicorn.run("app.cli:served_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    _serve(_settings(), args.host, args.port, args.workers)
    return 0


# By name: `app` never imports `workers` (the worker imports `app`).
WORKER_ENTRY = "workers.settings.run"


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the arq worker: jobs from the outbox, cron jobs; Ctrl-C / SIGTERM stop it cleanly."""
    from arq.utils import import_string

    from app.logging import configure_logging

    settings = _settings()
    _require(settings, "database_url", "redis_url", "maintenance_database_url")
    refuse_unsafe_start(settings)
    configure_logging("DEBUG" if settings.debug else "INFO")
    run = import_string(WORKER_ENTRY)
    result: int = run(settings, burst=args.burst)
    return result


def _start_worker() -> subprocess.Popen[bytes]:
    """`warden dev`: the worker as a second process with the same environment."""
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "app", "worker"], env=dict(os.environ)
    )


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # arq stops picking jobs and cancels the running ones
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.db.hardening import DatabaseLimits
    from app.db.migrate import migrate

    settings = _settings()
    if (
        not settings.admin_database_url
        or not settings.database_url
        or not settings.maintenance_database_url
    ):
        print(
            "warden migrate needs WARDEN_ADMIN_DATABASE_URL, WARDEN_DATABASE_URL and "
            "WARDEN_MAINTENANCE_DATABASE_URL",
            file=sys.stderr,
        )
        return 2
    asyncio.run(
        migrate(
            settings.admin_database_url,
            settings.database_url,
            settings.definer_role,
            settings.platform_role,
            audit_purge_grace_hours=settings.audit_purge_grace_hours,
            maintenance_url=settings.maintenance_database_url,
            limits=DatabaseLimits.from_settings(settings),
        )
    )
    print(
        f"migrated; runtime role {settings.runtime_role}, maintenance role "
        f"{settings.maintenance_role}, function owners {settings.definer_role} and "
        f"{settings.platform_role}"
    )
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from app.seed import seed_demo

    logins = asyncio.run(seed_demo(_settings()))
    _print_logins(logins)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from app.checks import run_checks

    problems = asyncio.run(run_checks(_settings(), rls=args.rls, database_urls=args.database_url))
    for problem in problems:
        print(f"FAIL {problem}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _set_platform_admin(settings: Settings, email: str, value: bool) -> int:
    """Rows changed (admin URL only: the runtime role cannot change this flag)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.db.hardening import owner_sees_every_user

    async def run() -> int:
        engine = create_async_engine(str(settings.admin_database_url))
        try:
            async with engine.begin() as conn, owner_sees_every_user(conn):
                result = await conn.execute(
                    text("UPDATE app_user SET is_platform_admin = :v WHERE email = lower(:e)"),
                    {"v": value, "e": email},
                )
                return int(result.rowcount)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_platform_admin(args: argparse.Namespace) -> int:
    """Grant or revoke installation-level, read-only cross-workspace access."""
    settings = _settings()
    if not settings.admin_database_url:
        print("warden platform-admin needs WARDEN_ADMIN_DATABASE_URL", file=sys.stderr)
        return 2
    if _set_platform_admin(settings, args.email, not args.revoke) != 1:
        print(f"no user with email {args.email}", file=sys.stderr)
        return 1
    print(f"{args.email}: platform admin {'revoked' if args.revoke else 'granted'}")
    return 0


def _new_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        return None
    import getpass

    first = getpass.getpass("Password: ")
    return first if getpass.getpass("Again: ") == first else ""


def cmd_create_user(args: argparse.Namespace) -> int:
    """Create a user whatever WARDEN_SIGNUP_ENABLED says (the first user of an installation),
    optionally a platform admin."""
    from pydantic import ValidationError

    from app.db.session import Database
    from app.errors import Conflict
    from app.schemas.auth import RegisterIn
    from app.services import auth

    settings = _settings()
    if args.platform_admin and not settings.admin_database_url:
        print("--platform-admin needs WARDEN_ADMIN_DATABASE_URL", file=sys.stderr)
        return 2
    password = _new_password(args)
    if password is None:
        print("no terminal to ask for the password: use --password-stdin", file=sys.stderr)
        return 2
    if password == "" and not args.password_stdin:
        print("the passwords differ", file=sys.stderr)
        return 2
    try:
        data = RegisterIn(email=args.email, password=password, name=args.name)
    except ValidationError as exc:
        fields = ", ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())
        print(f"refused: {fields}", file=sys.stderr)
        return 2

    async def run() -> str:
        db = Database.from_settings(settings, pool_size=1)
        client = auth.Client(ip=None, user_agent="warden create-user", path="warden create-user")
        try:
            user = await auth.register(db, settings, data.email, data.password, data.name, client)
            return str(user.id)
        finally:
            await db.dispose()

    try:
        user_id = asyncio.run(run())
    except Conflict:
        print(f"a user with email {data.email} exists already", file=sys.stderr)
        return 1
    print(f"created {data.email.lower()} ({user_id})")
    if args.platform_admin:
        _set_platform_admin(settings, data.email, True)
        print(f"{data.email.lower()}: platform admin granted")
    return 0


def _print_logins(logins: dict[str, object]) -> None:
    print("\nDemo logins (password: {}):".format(logins["password"]))
    users: dict[str, str] = logins["users"]  # type: ignore[assignment]
    for email, where in users.items():
        print(f"  {email:28} {where}")


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    """Random secrets kept in the data folder, so a second `warden dev` reuses tokens and roles."""
    path = data_dir / "secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        if "maintenance_password" not in stored:  # a data folder from an earlier version
            stored["maintenance_password"] = secrets.token_urlsafe(18)
            path.write_text(json.dumps(stored))
        return stored
    values = {
        "jwt_secret": secrets.token_urlsafe(48),
        "runtime_password": secrets.token_urlsafe(18),
        "maintenance_password": secrets.token_urlsafe(18),
    }
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def cmd_dev(args: argparse.Namespace) -> int:
    """Embedded PostgreSQL + Redis when no URLs are configured; migrate, seed, serve the API
    and run the worker (a second process)."""
    from sqlalchemy.engine import make_url

    from app.db.hardening import DatabaseLimits
    from app.db.migrate import ensure_database, migrate
    from app.embedded import EmbeddedPostgres, EmbeddedRedis
    from app.seed import seed_demo

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stored = _dev_secrets(data_dir)
    env = os.environ
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    worker: subprocess.Popen[bytes] | None = None
    # SIGTERM stops everything as Ctrl-C does (the finally below), in every phase: uvicorn
    # re-raises the signal after its own shutdown, and this handler turns it into the same exit.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not env.get("WARDEN_DATABASE_URL"):
            first = not (data_dir / "postgres" / "PG_VERSION").exists()
            _say(
                f"Starting embedded PostgreSQL in {data_dir}"
                + (" (first run: creating the cluster, about half a minute)" if first else "")
            )
            pg = EmbeddedPostgres(data_dir)
            started.append(pg)
            admin = make_url(pg.start()).set(database="warden")
            env["WARDEN_ADMIN_DATABASE_URL"] = admin.render_as_string(hide_password=False)
            env["WARDEN_DATABASE_URL"] = admin.set(
                username="warden_app", password=stored["runtime_password"]
            ).render_as_string(hide_password=False)
            env.setdefault(
                "WARDEN_MAINTENANCE_DATABASE_URL",
                admin.set(
                    username="warden_maintenance", password=stored["maintenance_password"]
                ).render_as_string(hide_password=False),
            )
        if not env.get("WARDEN_REDIS_URL"):
            _say("Starting embedded Redis")
            rd = EmbeddedRedis(data_dir)
            started.append(rd)
            env["WARDEN_REDIS_URL"] = rd.start()
        env.setdefault("WARDEN_ENVIRONMENT", "development")
        env.setdefault("WARDEN_SIGNUP_ENABLED", "true")
        env.setdefault("WARDEN_JWT_SECRET", stored["jwt_secret"])
        settings = _settings()
        if settings.admin_database_url:
            _say("Migrating the database (roles, schema, privileges)")
            asyncio.run(ensure_database(settings.admin_database_url))
            asyncio.run(
                migrate(
                    settings.admin_database_url,
                    str(settings.database_url),
                    settings.definer_role,
                    settings.platform_role,
                    maintenance_url=settings.maintenance_database_url,
                    limits=DatabaseLimits.from_settings(settings),
                )
            )
        _say("Seeding the demo workspaces (a scan is imported by the worker once it starts)")
        logins = asyncio.run(seed_demo(settings))
        _print_logins(logins)
        runtime = make_url(str(settings.database_url))
        workspace = logins["workspaces"]["acme-prod"]  # type: ignore[index]
        print(
            "\nWatch RLS at work as the runtime role:\n"
            f"  psql 'postgresql://{runtime.username}:{runtime.password}@{runtime.host}:"
            f"{runtime.port}/{runtime.database}'\n"
            "  => SELECT count(*) FROM provider;                -- 0: no context\n"
            f"  => BEGIN; SET LOCAL app.current_workspace_id = '{workspace}';\n"
            "  => SET LOCAL app.unlimited_visibility = 'on';    -- provider-group visibility\n"
            "  => SELECT uid, alias FROM provider;  COMMIT;     -- that workspace only\n"
        )
        print(f"Swagger UI: http://{args.host}:{args.port}/docs   (Ctrl-C stops everything)\n")
        worker = _start_worker()
        _serve(settings, args.host, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        if worker is not None:
            _say("Stopping the worker")
            _stop_worker(worker)
        for server in reversed(started):
            kind = "PostgreSQL" if isinstance(server, EmbeddedPostgres) else "Redis"
            _say(f"Stopping embedded {kind}")
            server.stop()
    return 0


def _say(message: str) -> None:
    print(f"warden dev: {message}…", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def health_url(command: Sequence[str], env: dict[str, str]) -> str | None:
    """Where the container's main process answers `/healthz`: the API's port for `serve` (and
    `dev`), the worker's metrics port for `worker`; None for one-shot commands (`migrate`)."""
    if "worker" in command:
        port = env.get("WARDEN_WORKER_METRICS_PORT")
        return f"http://127.0.0.1:{port}/healthz" if port else None
    if "serve" in command or "dev" in command:
        args = list(command)
        port = args[args.index("--port") + 1] if "--port" in args[:-1] else str(DEFAULT_PORT)
        return f"http://127.0.0.1:{port}/healthz"
    return None


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """The image's HEALTHCHECK: probe whichever service this container runs (PID 1)."""
    import urllib.request

    try:
        raw = Path(f"/proc/{args.pid}/cmdline").read_bytes()
    except OSError:
        return 1
    url = health_url([a.decode() for a in raw.split(b"\0") if a], dict(os.environ))
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback only
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


def cmd_bench(args: argparse.Namespace) -> int:
    """The benchmark harness (benchmarks/run.py); its options follow `bench`.

    The harness is not installed with the package: it is read from the source tree this
    `app` package lives in (an editable install, `make bench`), wherever the command runs."""
    source_tree = Path(__file__).resolve().parents[1]
    if (source_tree / "benchmarks" / "run.py").is_file() and str(source_tree) not in sys.path:
        sys.path.insert(0, str(source_tree))
    try:
        from benchmarks.run import main as bench_main
    except ImportError as exc:
        print(
            f"warden bench runs from a source checkout (its benchmarks/ folder, with "
            f"requirements.lock installed): {exc}",
            file=sys.stderr,
        )
        return 2
    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warden", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    for name, func, helptext in (
        ("dev", cmd_dev, "run API and worker locally (embedded PostgreSQL/Redis without URLs)"),
        ("serve", cmd_serve, "serve the API (production)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--host", default=DEFAULT_HOST)
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        if name == "serve":
            p.add_argument(
                "--workers", type=int, default=1, help="API processes (one per core, say)"
            )
        if name == "dev":
            p.add_argument("--data-dir", default=".warden", help="where embedded servers keep data")
        p.set_defaults(func=func)

    worker = sub.add_parser("worker", help="run the background job worker (arq)")
    worker.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="create/update roles, schema and privileges").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser("seed", help="load the demo workspaces and users").set_defaults(func=cmd_seed)
    padmin = sub.add_parser("platform-admin", help="grant/revoke installation-wide read access")
    padmin.add_argument("email")
    padmin.add_argument("--revoke", action="store_true")
    padmin.set_defaults(func=cmd_platform_admin)
    create = sub.add_parser("create-user", help="create a user (e.g. the first, sign-up off)")
    create.add_argument("email")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create.add_argument(
        "--platform-admin", action="store_true", help="also grant installation-wide read access"
    )
    create.set_defaults(func=cmd_create_user)
    check = sub.add_parser("check", help="production readiness checks")
    check.add_argument(
        "--rls", action="store_true", help="also run the RLS catalog conformance check"
    )
    check.add_argument(
        "--database-url",
        action="append",
        default=[],
        help="a node to check (repeatable; default: the admin or runtime URL)",
    )
    check.set_defaults(func=cmd_check)
    health = sub.add_parser("healthcheck", help="probe the service this container runs")
    health.add_argument("--pid", type=int, default=1, help="the process whose service to probe")
    health.set_defaults(func=cmd_healthcheck)
    bench = sub.add_parser(
        "bench",
        help="benchmarks against the bare stack (`warden bench --help` for options)",
        add_help=False,
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    from app.audit_cli import add_parser as add_audit_parser

    add_audit_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # every option after `bench` is the harness's, --help included
        return cmd_bench(argparse.Namespace(bench_args=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ValidationError as exc:
        print(f"warden: configuration error: {explain(exc)}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"warden: configuration error: {exc}", file=sys.stderr)
        return 2
    return result
