"""`warden migrate`: roles (on Citus, and their logins between nodes), then Alembic (as the
owner), then (on Citus) the distribution of tables still local, then privileges and limits
(`app.db.hardening`)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from alembic import command
from app.db.citus import distribute_schema
from app.db.hardening import DatabaseLimits, apply_limits, ensure_maintenance_role
from app.db.roles import Roles, apply_privileges, ensure_roles, node_logins

ROOT = Path(__file__).resolve().parents[2]


def alembic_config() -> Config:
    """The source tree's alembic.ini, or the working directory's (an installed package)."""
    for base in (ROOT, Path.cwd()):
        if (base / "alembic.ini").exists() and (base / "alembic").is_dir():
            cfg = Config(str(base / "alembic.ini"))
            cfg.set_main_option("script_location", str(base / "alembic"))
            return cfg
    raise RuntimeError("alembic.ini and alembic/ not found (run from the project directory)")


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(
    admin_url: str,
    runtime_url: str,
    definer_role: str,
    platform_role: str,
    revision: str = "head",
    audit_purge_grace_hours: int | None = None,
    *,
    maintenance_url: str | None = None,
    limits: DatabaseLimits | None = None,
) -> None:
    """Bring schema, roles and grants of the admin URL's database up to `revision`; set the
    grace period before a deleted workspace's audit trail may be purged (None: keep it).
    Without `maintenance_url` no maintenance role is made, and nobody may run the maintenance
    functions (the worker's cron jobs need it)."""
    runtime = make_url(runtime_url)
    if not runtime.username:
        raise RuntimeError("the runtime database URL must name its role")
    maintenance = make_url(maintenance_url) if maintenance_url else None
    if maintenance is not None and not maintenance.username:
        raise RuntimeError("the maintenance database URL must name its role")
    if maintenance is not None and maintenance.username == runtime.username:
        raise RuntimeError("the maintenance role must not be the runtime role")
    roles = Roles(
        runtime=runtime.username,
        definer=definer_role,
        platform=platform_role,
        maintenance=maintenance.username if maintenance is not None else None,
    )
    engine = create_async_engine(admin_url)
    try:
        async with engine.begin() as conn:
            await ensure_roles(conn, roles, runtime.password)
            if maintenance is not None and maintenance.username:
                await ensure_maintenance_role(conn, maintenance.username, maintenance.password)
        async with engine.begin() as conn:
            await node_logins(conn, roles, runtime.password)
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
        async with engine.begin() as conn:
            await conn.run_sync(distribute_schema)
        async with engine.begin() as conn:
            await apply_privileges(conn, roles)
            if audit_purge_grace_hours is not None:
                await set_purge_grace(conn, audit_purge_grace_hours)
            await apply_limits(conn, roles, limits or DatabaseLimits())
    finally:
        await engine.dispose()


# The functions that read the grace period: the purge and the deletions due wait for it, and
# retention removes no record younger than it.
PURGE_GRACE_FUNCTIONS = (
    "warden_purge_audit(uuid, integer)",
    "warden_deletions_due(integer)",
    "warden_audit_retention(integer, integer)",
)


async def set_purge_grace(conn: AsyncConnection, hours: int) -> None:
    """The grace period is a setting of the definer functions themselves: the runtime role,
    which may SET any custom setting in its session, cannot change what they read."""
    for fn in PURGE_GRACE_FUNCTIONS:
        if (await conn.execute(text("SELECT to_regprocedure(:f)"), {"f": fn})).scalar():
            await conn.execute(
                text(f"ALTER FUNCTION {fn} SET warden.audit_purge_grace = '{int(hours)} hours'")
            )


async def ensure_database(admin_url: str) -> None:
    """Create the admin URL's database if it does not exist (connecting via `postgres`)."""
    url = make_url(admin_url)
    name = url.database
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            exists = await raw.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await raw.execute('CREATE DATABASE "' + str(name).replace('"', '""') + '"')
    finally:
        await engine.dispose()
