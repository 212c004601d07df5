"""`warden bench` / `make bench` / `python -m benchmarks.run`: the benchmark harness.

Creates a throwaway database (real migrations, roles), fills it with SQL, starts `warden serve`
and the bare app (one uvicorn worker each, free ports), runs the scenarios, writes
`latest.md`, `latest.json` and `latest.png` to the results folder, prints a table, and drops the
database. `--quick` is a smoke run (seconds). `--profile` also samples the Warden process with
py-spy under the throughput load and writes the hottest functions.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from app.config import Settings
from benchmarks import compare, report
from benchmarks.data import BenchData, generate
from benchmarks.env import BenchDatabase, bench_database, bench_servers
from benchmarks.loadgen import WRK_HINT, wrk_path
from benchmarks.scenarios import SCENARIOS, Context, Result
from benchmarks.scenarios.scale import FULL_SIZES, QUICK_SIZES
from benchmarks.servers import bare_server, warden_server

RESULTS = Path(__file__).resolve().parent / "results"

FULL = {
    "workspaces": 1000,
    "providers": 50,
    "rounds": 5,
    "duration": 20.0,
    "warmup": 10.0,
    "connections": 16,
    "rls_iterations": 2000,
    "clients": 200,
    "client_workspaces": 50,
    "concurrency_duration": 60.0,
    "scale_duration": 10.0,
    "ingest_findings": 100_000,
    "spam_clients": 30,
    "spam_duration": 10.0,
}
QUICK = {
    "workspaces": 20,
    "providers": 50,
    "rounds": 2,
    "duration": 1.0,
    "warmup": 1.0,
    "connections": 4,
    "rls_iterations": 40,
    "clients": 20,
    "client_workspaces": 5,
    "concurrency_duration": 2.0,
    "scale_duration": 1.0,
    "ingest_findings": 300,
    "spam_clients": 10,
    "spam_duration": 1.0,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warden bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, ~20 s")
    p.add_argument(
        "--only",
        action="append",
        choices=[s.key for s in SCENARIOS],
        help="run only this scenario (repeatable)",
    )
    p.add_argument("--workspaces", type=int, help="workspaces generated (default 1000)")
    p.add_argument("--providers", type=int, help="providers per workspace (default 50)")
    p.add_argument("--rounds", type=int, help="A/B rounds (default 5)")
    p.add_argument("--duration", type=float, help="seconds per side per round (default 20)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per side (default 10)")
    p.add_argument("--connections", type=int, help="load connections, throughput (default 16)")
    p.add_argument("--rls-iterations", type=int, help="executions per query/side/round (2000)")
    p.add_argument("--clients", type=int, help="concurrent clients (default 200)")
    p.add_argument("--client-workspaces", type=int, help="their workspaces (default 50)")
    p.add_argument("--concurrency-duration", type=float, help="seconds (default 60)")
    p.add_argument(
        "--scale-sizes",
        help="scale: total findings per step, comma-separated (default 10000,100000,1000000,"
        "10000000; --quick: 2000,4000)",
    )
    p.add_argument("--scale-duration", type=float, help="scale: seconds per list per size (10)")
    p.add_argument("--ingest-findings", type=int, help="ingest: findings in the report (100000)")
    p.add_argument(
        "--spam-clients", type=int, help="login_spam: concurrent spam logins (default 30)"
    )
    p.add_argument(
        "--spam-duration", type=float, help="login_spam: seconds per side per round (default 10)"
    )
    p.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator for throughput (auto: wrk when installed)",
    )
    p.add_argument("--database-url", help="PostgreSQL superuser URL (else BENCH_DATABASE_URL)")
    p.add_argument("--redis-url", help="Redis URL (else BENCH_REDIS_URL)")
    p.add_argument(
        "--citus-url",
        help="citus scenario: a Citus coordinator's database with its workers registered, as "
        "superuser (else BENCH_CITUS_URL); the scenario is skipped without one",
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample Warden with py-spy under load; write profile-warden.txt",
    )
    p.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    p.add_argument(
        "--baseline",
        type=Path,
        help="a previous run's latest.json to compare with (default: the results folder's)",
    )
    p.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a key number is worse than the baseline's beyond its tolerance",
    )
    return p


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    opts = build_parser().parse_args(argv)
    defaults = QUICK if opts.quick else FULL
    for key, value in defaults.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    opts.client_workspaces = min(opts.client_workspaces, opts.workspaces)
    if opts.scale_sizes is None:
        opts.scale_sizes = ",".join(str(n) for n in (QUICK_SIZES if opts.quick else FULL_SIZES))
    return opts


def server_env(db: BenchDatabase, redis_url: str) -> dict[str, str]:
    """The Warden process's settings: production defaults, the runtime role, a fresh secret."""
    return {
        "WARDEN_ENVIRONMENT": "production",
        "WARDEN_DATABASE_URL": db.runtime_url,
        "WARDEN_MAINTENANCE_DATABASE_URL": db.maintenance_url,
        "WARDEN_REDIS_URL": redis_url,
        "WARDEN_JWT_SECRET": secrets.token_urlsafe(48),
        "WARDEN_ACCESS_TOKEN_TTL_SECONDS": "86400",  # a long run must not outlive its tokens
        "WARDEN_ARGON2_TIME_COST": "1",  # only the harness's logins hash anything
        "WARDEN_ARGON2_MEMORY_COST": "8192",
        "WARDEN_JOB_QUEUE_NAME": f"warden:bench:{db.name}",  # not another run's queue
    }


def settings_from(env: dict[str, str]) -> Settings:
    """The same settings in-process (for the harness's logins) as the server reads from `env`."""
    values: dict[str, Any] = {k.removeprefix("WARDEN_").lower(): v for k, v in env.items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def bare_env(settings: Settings, db: BenchDatabase, config: str) -> dict[str, str]:
    return {
        "BENCH_BARE_DSN": db.dsn("runtime"),
        "BENCH_BARE_CONFIG": config,
        "BENCH_BARE_POOL_SIZE": str(settings.db_pool_size),
        "BENCH_BARE_MAX_OVERFLOW": str(settings.db_max_overflow),
        "BENCH_BARE_STATEMENT_CACHE_SIZE": str(settings.db_statement_cache_size),
    }


async def _scenarios(ctx: Context, keys: list[str] | None) -> list[Result]:
    results = []
    for scenario in SCENARIOS:
        if keys and scenario.key not in keys:
            continue
        reason = await scenario.missing(ctx)
        if reason:
            ctx.log(f"== {scenario.title}: pending, {reason}")
            results.append(Result(scenario.key, scenario.title, scenario.target, skipped=reason))
            continue
        ctx.log(f"== {scenario.title}")
        results.append(await scenario.run(ctx))
    return results


async def _profile(ctx: Context, directory: Path) -> Path:
    """py-spy samples the Warden process while the throughput load runs; the collapsed stacks
    are reduced to inclusive sample shares per function (what to optimize first)."""
    from benchmarks.scenarios.throughput import SCENARIO as throughput

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = directory / "profile-warden.collapsed"
    seconds = max(5, round(ctx.options.duration))
    argv = ["record", "--pid", str(ctx.warden.pid), "--duration", str(seconds)]
    argv += ["--rate", "200", "--format", "raw", "--output", str(raw)]
    proc = await asyncio.create_subprocess_exec(
        spy,
        *argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await throughput._load(ctx, ctx.warden, seconds + 1)
    await proc.wait()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] += n
    out = directory / "profile-warden.txt"
    lines = [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(80)]
    out.write_text(f"py-spy, {total} samples, inclusive share per frame\n" + "\n".join(lines))
    return out


async def bench(opts: argparse.Namespace) -> tuple[list[Result], list[dict[str, str]]]:
    use_wrk = opts.client == "wrk" or (opts.client == "auto" and wrk_path() is not None)
    if use_wrk and wrk_path() is None:
        raise SystemExit(WRK_HINT.split(";")[0])
    if opts.client == "auto" and not use_wrk:
        print(WRK_HINT)
    async with bench_servers(opts.database_url, opts.redis_url) as servers:
        if servers.embedded:
            print(f"using embedded {', '.join(servers.embedded)} (no server answered)")
        async with bench_database(servers) as db:
            machine = await report.machine_info(db.dsn("admin"))
            env = server_env(db, servers.redis_url)
            settings = settings_from(env)
            print(f"generating {opts.workspaces} workspaces x {opts.providers} providers")
            data = await generate(
                db.dsn("admin"),
                settings,
                opts.workspaces,
                opts.providers,
                with_tokens=max(opts.client_workspaces, min(10, opts.workspaces)),
            )
            results = await _serve_and_run(opts, db, data, env, settings, use_wrk)
            previous = compare.load(opts.baseline or opts.results_dir / report.JSON)
            comparison = compare.compare(previous, results) if previous else []
            options = _recorded_options(opts, use_wrk)
            for path in report.write(opts.results_dir, results, machine, options, comparison):
                print(f"wrote {path}")
    return results, comparison


async def _serve_and_run(
    opts: argparse.Namespace,
    db: BenchDatabase,
    data: BenchData,
    env: dict[str, str],
    settings: Settings,
    use_wrk: bool,
) -> list[Result]:
    """Both servers up for the scenarios (and the profile); their output kept for a failed run."""
    logs = opts.results_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    warden = warden_server(env, logs / "warden.log")
    bare = bare_server(bare_env(settings, db, data.bare_config()), logs / "bare.log")
    with warden, bare:
        ctx = Context(opts, db, data, warden, bare, use_wrk, settings)
        results = await _scenarios(ctx, opts.only)
        if opts.profile:
            print(f"profile: {await _profile(ctx, opts.results_dir)}")
    return results


def _recorded_options(opts: argparse.Namespace, use_wrk: bool) -> dict[str, Any]:
    keys = (
        "workspaces",
        "providers",
        "rounds",
        "duration",
        "warmup",
        "connections",
        "rls_iterations",
        "clients",
        "client_workspaces",
        "concurrency_duration",
        "scale_sizes",
        "scale_duration",
        "ingest_findings",
        "spam_clients",
        "spam_duration",
    )
    out: dict[str, Any] = {k: getattr(opts, k) for k in keys}
    out["client"] = "wrk" if use_wrk else "python"
    return out


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    results, comparison = asyncio.run(bench(opts))
    print()
    print(report.console(results))
    for row in comparison:
        print(
            f"vs previous: {row['metric']}: {row['previous']} -> {row['now']} ({row['change']})"
            f" {row['verdict']}"
        )
    missed = [r for r in results if r.passed is False]
    if missed and opts.fail_on_miss:
        return 1
    return 1 if (opts.fail_on_regression and compare.regressed(comparison)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
