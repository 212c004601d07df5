"""Where the benchmark's PostgreSQL and Redis come from, and the throwaway database on them.

PostgreSQL: `--database-url`, else `BENCH_DATABASE_URL`, else the machine's default server
(postgresql://postgres@127.0.0.1:5432/postgres); when none answers, an embedded server
(`app.embedded`) in a temporary folder. Redis likewise (`BENCH_REDIS_URL`, default
redis://127.0.0.1:6379/0). The database and its five roles get unique names, are migrated with
the real migrations, and are dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy.engine import make_url

from app.db.migrate import migrate
from app.db.roles import quote_ident

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def sqlalchemy_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _postgres_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def _redis_answers(url: str) -> bool:
    parsed = urlsplit(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 6379), 2
        ) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True)
class Servers:
    postgres_url: str  # a superuser, database "postgres" (any driver prefix)
    redis_url: str
    embedded: tuple[str, ...] = ()


@asynccontextmanager
async def bench_servers(
    database_url: str | None = None, redis_url: str | None = None
) -> AsyncIterator[Servers]:
    """The servers to benchmark on; embedded ones are started (and stopped) when needed."""
    pg_url = database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    rd_url = redis_url or os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        started: list[object] = []
        try:
            if not await _postgres_answers(pg_url):
                from app.embedded import EmbeddedPostgres

                pg = EmbeddedPostgres(Path(tmp) / "pg")
                started.append(pg)
                pg_url = pg.start()
            if not _redis_answers(rd_url):
                from app.embedded import EmbeddedRedis

                rd = EmbeddedRedis(Path(tmp) / "redis")
                started.append(rd)
                rd_url = rd.start()
            names = tuple(type(s).__name__ for s in started)
            yield Servers(pg_url, rd_url, names)
        finally:
            for server in reversed(started):
                server.stop()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BenchDatabase:
    name: str
    admin_url: str  # superuser on the bench database (SQLAlchemy form)
    runtime_url: str  # the app's NOBYPASSRLS role, as in production
    bypass_url: str  # a BYPASSRLS SELECT-only role, for the RLS-overhead baseline
    runtime_role: str
    definer_role: str
    platform_role: str
    bypass_role: str
    maintenance_url: str = ""  # the worker's cron role (may run only the upkeep functions)
    maintenance_role: str = ""

    def dsn(self, which: str) -> str:
        """asyncpg DSN for 'admin', 'runtime' or 'bypass'."""
        return asyncpg_dsn(getattr(self, f"{which}_url"))


def _unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@asynccontextmanager
async def bench_database(servers: Servers) -> AsyncIterator[BenchDatabase]:
    """A fresh database migrated to head, its roles, and a BYPASSRLS reader; dropped at exit."""
    server = make_url(sqlalchemy_url(servers.postgres_url))
    name = _unique("warden_bench")
    roles = {
        k: _unique(f"warden_bench_{k}")
        for k in ("app", "definer", "platform", "bypass", "maintenance")
    }
    password = secrets.token_hex(12)
    root = await asyncpg.connect(asyncpg_dsn(servers.postgres_url))
    await root.execute(f"CREATE DATABASE {quote_ident(name)}")
    admin = server.set(database=name)

    def url(role: str) -> str:
        return admin.set(username=role, password=password).render_as_string(hide_password=False)

    db = BenchDatabase(
        name=name,
        admin_url=admin.render_as_string(hide_password=False),
        runtime_url=url(roles["app"]),
        bypass_url=url(roles["bypass"]),
        runtime_role=roles["app"],
        definer_role=roles["definer"],
        platform_role=roles["platform"],
        bypass_role=roles["bypass"],
        maintenance_url=url(roles["maintenance"]),
        maintenance_role=roles["maintenance"],
    )
    try:
        await migrate(
            db.admin_url,
            db.runtime_url,
            db.definer_role,
            db.platform_role,
            maintenance_url=db.maintenance_url,
        )
        conn = await asyncpg.connect(db.dsn("admin"))
        try:
            bypass = quote_ident(db.bypass_role)
            await conn.execute(
                f"CREATE ROLE {bypass} LOGIN BYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"PASSWORD '{password}'"
            )
            await conn.execute(f"GRANT CONNECT ON DATABASE {quote_ident(name)} TO {bypass}")
            await conn.execute(f"GRANT USAGE ON SCHEMA public TO {bypass}")
            await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {bypass}")
            # The same session settings as the runtime role (plan cache mode, compression):
            # the two sides must differ in RLS only.
            settings = await conn.fetchval(
                "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = "
                "s.setrole JOIN pg_database d ON d.oid = s.setdatabase "
                "WHERE r.rolname = $1 AND d.datname = $2",
                db.runtime_role,
                name,
            )
            for setting in settings or ():
                key, _, value = setting.partition("=")
                await conn.execute(
                    f"ALTER ROLE {bypass} IN DATABASE {quote_ident(name)} SET {key} = '{value}'"
                )
        finally:
            await conn.close()
        yield db
    finally:
        await root.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        for role in roles.values():
            await root.execute(f"DROP ROLE IF EXISTS {quote_ident(role)}")
        await root.close()
