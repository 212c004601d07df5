"""What `warden migrate` does beyond grants, against a takeover of the application process
(someone running arbitrary SQL as the runtime role):

- the maintenance role: a login of its own (WARDEN_MAINTENANCE_DATABASE_URL) that may only
  EXECUTE the cross-workspace maintenance functions (`MAINTENANCE_FUNCTIONS`; the grants are in
  `app.db.roles.apply_privileges`), used only by the worker's cron jobs;
- the floors those functions enforce whatever they are passed (the configured task retention,
  the configured age of a stuck task), stored on the functions themselves (`ALTER FUNCTION ...
  SET`), which only their owner can change;
- the runtime role's `statement_timeout` and `idle_in_transaction_session_timeout` (defaults a
  session may lower or raise: they stop runaway work, not a determined attacker);
- no temporary tables (TEMPORARY on the database revoked from PUBLIC and the login roles);
- no large objects: their functions are revoked from PUBLIC in the database (nothing in Warden
  uses them; a large object is storage outside every table and policy).

`app.db.catalog` checks all of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.db.citus import node_kind
from app.db.roles import Roles, quote_ident, quote_literal

# Every server-side large-object function (all their overloads), revoked from PUBLIC.
LARGE_OBJECT_FUNCTIONS = (
    "lo_creat",
    "lo_create",
    "lo_from_bytea",
    "lo_import",
    "lo_export",
    "lo_put",
    "lo_get",
    "lo_open",
    "lo_close",
    "loread",
    "lowrite",
    "lo_lseek",
    "lo_lseek64",
    "lo_tell",
    "lo_tell64",
    "lo_truncate",
    "lo_truncate64",
    "lo_unlink",
)

# Maintenance function -> (the setting its floor is read from, the limit that sets it).
FUNCTION_FLOORS = {
    "warden_prune_tasks(integer, integer)": ("warden.min_task_retention_days", "task_retention"),
    "warden_expire_stuck_tasks(integer)": ("warden.min_stuck_task_seconds", "stuck_task"),
}


@dataclass(frozen=True)
class DatabaseLimits:
    """The configured values `warden migrate` writes into the database."""

    statement_timeout_ms: int = 30000
    idle_in_transaction_timeout_ms: int = 60000
    task_retention_days: int = 30
    stuck_task_seconds: int = 3600 + 300 + 300

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseLimits:
        return cls(
            statement_timeout_ms=settings.db_statement_timeout_ms,
            idle_in_transaction_timeout_ms=settings.db_idle_in_transaction_timeout_ms,
            task_retention_days=settings.task_retention_days,
            stuck_task_seconds=stuck_task_seconds(settings),
        )

    def floor(self, name: str) -> int:
        return self.task_retention_days if name == "task_retention" else self.stuck_task_seconds


def stuck_task_seconds(settings: Settings) -> int:
    """How long a running task may go without progress before it counts as abandoned (the
    worker's cron passes the same)."""
    return int(settings.job_hard_time_limit + settings.job_retry_max_seconds + 300)


async def _exists(conn: AsyncConnection, role: str) -> bool:
    found = await conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    return found.scalar() is not None


async def ensure_maintenance_role(conn: AsyncConnection, role: str, password: str | None) -> None:
    """Create or correct the maintenance login: no bypass, no ownership, no attributes."""
    verb = "ALTER" if await _exists(conn, role) else "CREATE"
    attrs = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"
    secret = f" PASSWORD {quote_literal(password)}" if password else ""
    await conn.execute(text(f"{verb} ROLE {quote_ident(role)} WITH {attrs}{secret}"))


async def apply_limits(conn: AsyncConnection, roles: Roles, limits: DatabaseLimits) -> None:
    """The runtime role's timeouts in this database, the maintenance functions' floors, no
    temporary tables for anyone but superusers and no large objects for anyone but their owner
    (a superuser): on every node of a Citus cluster, where the login roles exist too."""
    database = quote_ident((await conn.execute(text("SELECT current_database()"))).scalar_one())
    rt = quote_ident(roles.runtime)
    logins = ", ".join(quote_ident(r) for r in (roles.runtime, roles.maintenance) if r)
    # Citus propagates this one (and ALTER ROLE … IN DATABASE) to the workers itself.
    await conn.execute(text(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, {logins}"))
    for name, value in (
        ("statement_timeout", limits.statement_timeout_ms),
        ("idle_in_transaction_session_timeout", limits.idle_in_transaction_timeout_ms),
    ):
        await conn.execute(
            text(f"ALTER ROLE {rt} IN DATABASE {database} SET {name} = {int(value)}")
        )
    for signature, (setting, limit) in FUNCTION_FLOORS.items():
        exists = await conn.execute(text("SELECT to_regprocedure(:f)"), {"f": signature})
        if exists.scalar() is not None:
            floor = quote_literal(str(int(limits.floor(limit))))
            await conn.execute(text(f"ALTER FUNCTION {signature} SET {setting} = {floor}"))
    functions = await conn.execute(
        text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY (:names)"
        ),
        {"names": list(LARGE_OBJECT_FUNCTIONS)},
    )
    revokes = [f"REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC" for f in functions.scalars()]
    for statement in revokes:
        await conn.execute(text(statement))
    if await node_kind(conn) == "coordinator":
        for statement in revokes:
            failed = (
                await conn.execute(
                    text(
                        "SELECT nodename, nodeport, result FROM run_command_on_workers(:c) "
                        "WHERE NOT success"
                    ),
                    {"c": statement},
                )
            ).all()
            if failed:
                raise RuntimeError(f"could not run {statement!r} on the workers: {failed}")


@asynccontextmanager
async def owner_sees_every_user(conn: AsyncConnection) -> AsyncIterator[None]:
    """For the installation's own commands (the admin URL, the table's owner): the policy on
    `app_user` is forced, so its owner sees no row without a user in context. Lifted for this
    transaction only (DDL is transactional; the table is locked until it ends)."""
    await conn.execute(text("ALTER TABLE app_user NO FORCE ROW LEVEL SECURITY"))
    yield
    await conn.execute(text("ALTER TABLE app_user FORCE ROW LEVEL SECURITY"))
