"""Database roles and privileges, reconciled by `warden migrate` after Alembic has run.

Invariant: the runtime role can log in, owns nothing, is NOSUPERUSER/NOBYPASSRLS and holds only
the DML privileges listed here (never TRUNCATE, REFERENCES or TRIGGER), EXECUTE on the definer
functions except the maintenance ones, and no TEMPORARY on the database. The maintenance role
(optional here; the worker's cron jobs need it) can log in, owns nothing, holds no table
privilege and may EXECUTE only `MAINTENANCE_FUNCTIONS`. The definer role cannot
log in (on Citus it can, with a secret only the nodes know: Citus reaches other nodes as the
function's owner); it owns the narrow SECURITY DEFINER functions and may read (or, for
workspace creation, the outbox, tasks, audit sealing, retention and denials, write) exactly the
tables and columns those functions touch. It also owns the partitioned `finding` table and its
partitions (PostgreSQL lets only the parent's owner create partitions), so that
`warden_create_finding_partition` can add months at run time; the runtime role has no privilege
on any partition (it reaches rows through the parent, under the parent's policy).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

DML = ("SELECT", "INSERT", "UPDATE", "DELETE")

# Tables whose runtime privileges differ from full DML. Everything else in the schema gets DML
# (and, without its RLS policy, fails the catalog check).
RUNTIME_TABLE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "alembic_version": (),
    "app_user": (),  # SELECT per column below (its own row); created by warden_register_user()
    # Created only through warden_create_workspace(); UPDATE per column below: never the
    # deletion mark (warden_mark_workspace_deleted() sets it, nothing clears it).
    "workspace": ("SELECT",),
    # Append-only: records and events are written by requests and never changed by them; their
    # id and time are the database's (INSERT per column below). Sealing, retention and
    # verification go through the definer functions below; cuts, heads and denials are written
    # only there.
    "audit_record": ("SELECT",),
    "audit_cut": ("SELECT",),
    "audit_head": ("SELECT",),
    "audit_denial": ("SELECT",),
    "user_event": ("SELECT",),
    # Keys: the runtime role never reads a secret's hash back (the lookup goes through
    # warden_api_key_context); it may write a key once and revoke it.
    "api_key": (),
    "service_key": ("DELETE",),  # the workspace's deletion removes its rows
    # Decisions and timelines are never edited (DELETE only for removing a deleted workspace).
    "change_approval": ("SELECT", "INSERT", "DELETE"),
    "incident_event": ("SELECT", "INSERT", "DELETE"),
}
_KEY_COLUMNS = (
    "id",
    "name",
    "prefix",
    "permissions",
    "permitted_endpoints",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "created_at",
)
# Users: the runtime role reads only its own row (the policy on `app_user` keys it by
# `app.current_user_id`), never password_hash (login reads it through warden_login_lookup), and
# updates nothing: a password changes through warden_change_password (compare-and-swap on the
# current hash), other users are reached only through the narrow functions below.
RUNTIME_COLUMN_PRIVILEGES: dict[str, dict[str, tuple[str, ...]]] = {
    "app_user": {
        "SELECT": (
            "id",
            "email",
            "name",
            "attributes",
            "is_active",
            "is_platform_admin",
            "created_at",
            "updated_at",
        ),
    },
    "api_key": {
        "SELECT": ("user_id", "bound_workspace_id", *_KEY_COLUMNS),
        "INSERT": ("user_id", "bound_workspace_id", "secret_hash", *_KEY_COLUMNS),
        "UPDATE": ("revoked_at",),
    },
    "service_key": {
        "SELECT": ("workspace_id", "created_by", *_KEY_COLUMNS),
        "INSERT": ("workspace_id", "created_by", "secret_hash", *_KEY_COLUMNS),
        "UPDATE": ("revoked_at",),
    },
    # Never the id or the time (set by a trigger), nor the chain columns.
    "audit_record": {
        "INSERT": (
            "workspace_id",
            "user_id",
            "action",
            "method",
            "path",
            "path_params",
            "query_params",
            "body",
            "state",
            "resource_type",
            "resource_id",
            "status",
            "api_key_id",
            "source_ip",
            "user_agent",
            "request_id",
        ),
    },
    "user_event": {
        "INSERT": (
            "user_id",
            "action",
            "method",
            "path",
            "path_params",
            "query_params",
            "body",
            "resource_type",
            "resource_id",
            "status",
            "api_key_id",
            "source_ip",
            "user_agent",
            "request_id",
        ),
    },
    "workspace": {"UPDATE": ("name", "audit_retention_days", "require_mfa", "updated_at")},
}


@dataclass(frozen=True)
class DefinerFunction:
    signature: str
    reads: tuple[str, ...]
    inserts: tuple[str, ...] = ()
    # A table name (every column) or (table, columns).
    updates: tuple[str | tuple[str, tuple[str, ...]], ...] = ()
    deletes: tuple[str, ...] = ()
    platform: bool = False  # owned by the SELECT-only platform role instead of the definer


DEFINER_FUNCTIONS: tuple[DefinerFunction, ...] = (
    DefinerFunction("warden_login_lookup(text)", reads=("app_user",)),
    # Other users, never in bulk: the members of the workspace in context (for a user who is
    # one of them), an active user by exact email; the own password by compare-and-swap.
    DefinerFunction("warden_member_users(uuid[])", reads=("app_user", "membership")),
    DefinerFunction("warden_user_by_email(text)", reads=("app_user", "membership")),
    DefinerFunction(
        "warden_change_password(text, text)",
        reads=("app_user",),
        updates=(("app_user", ("password_hash", "updated_at")),),
    ),
    # Registration: a new user with the columns' defaults (never a platform admin), and its
    # first security event.
    DefinerFunction(
        "warden_register_user(uuid, text, text, text, jsonb)",
        reads=(),
        inserts=("app_user", "user_event"),
    ),
    DefinerFunction(
        "warden_request_context(uuid, uuid, text)",
        reads=(
            "app_user",
            "auth_session",
            "workspace",
            "membership",
            "custom_role",
            "role_provider_group",
            "provider_group_member",
            "user_mfa",
        ),
    ),
    # Identity: a key by its prefix with its user's membership; the key's last-used stamp; the
    # OIDC sign-in (provisioning by issuer + subject) and the group sync of the user in context.
    DefinerFunction(
        "warden_api_key_context(text, text)",
        reads=(
            "api_key",
            "service_key",
            "app_user",
            "workspace",
            "membership",
            "custom_role",
            "role_provider_group",
            "provider_group_member",
            "user_mfa",
        ),
    ),
    DefinerFunction(
        "warden_api_key_used(text, uuid, uuid)",
        reads=("api_key", "service_key"),
        updates=(("api_key", ("last_used_at",)), ("service_key", ("last_used_at",))),
    ),
    DefinerFunction(
        "warden_oidc_sign_in(text, text, text, boolean, text)",
        reads=("app_user", "user_identity"),
        inserts=("app_user", "user_identity"),
    ),
    DefinerFunction(
        "warden_idp_sync(text[], text, text, text)",
        reads=("idp_group_mapping", "workspace", "custom_role", "membership"),
        inserts=("membership", "audit_record"),
        updates=(("membership", ("role", "custom_role_id", "updated_at")),),
        deletes=("membership",),
    ),
    DefinerFunction(
        "warden_platform_workspaces()",
        reads=("app_user", "workspace", "membership", "provider"),
        platform=True,
    ),
    DefinerFunction("warden_user_workspaces()", reads=("membership", "workspace", "custom_role")),
    DefinerFunction(
        "warden_create_workspace(uuid, text, text)",
        reads=(),
        inserts=("workspace", "membership"),
    ),
    DefinerFunction(
        "warden_member_context(uuid, uuid)",
        reads=(
            "app_user",
            "workspace",
            "membership",
            "custom_role",
            "role_provider_group",
            "provider_group_member",
        ),
    ),
    DefinerFunction("warden_outbox_pending(integer, integer)", reads=("outbox",)),
    DefinerFunction("warden_outbox_mark_sent(uuid[])", reads=("outbox",), updates=("outbox",)),
    # Operators' views (`/metrics`, `/readyz`): a count and an age, the schema revision.
    DefinerFunction("warden_outbox_stats()", reads=("outbox",)),
    # Values to mask in responses for a role the provider uid is hidden from (every provider
    # of the workspace in context, the hidden ones too).
    DefinerFunction("warden_provider_uids()", reads=("provider",)),
    DefinerFunction("warden_schema_version()", reads=("alembic_version",)),
    # A pruned task's scans stay and forget it (the key to it is cleared first).
    DefinerFunction(
        "warden_prune_tasks(integer, integer)",
        reads=("task", "scan"),
        updates=(("scan", ("task_id",)),),
        deletes=("task",),
    ),
    DefinerFunction(
        "warden_expire_stuck_tasks(integer)", reads=("task", "outbox"), updates=("task", "outbox")
    ),
    DefinerFunction(
        "warden_drop_workspace(uuid)",
        reads=("workspace", "membership", "custom_role"),
        deletes=("workspace", "membership", "custom_role"),
    ),
    # The worker's takeover sweep and the idempotency key retention.
    DefinerFunction("warden_expired_task_leases(integer, integer)", reads=("task", "outbox")),
    DefinerFunction(
        "warden_prune_idempotency_keys()",
        reads=("idempotency_key", "user_idempotency_key"),
        deletes=("idempotency_key", "user_idempotency_key"),
    ),
    DefinerFunction("warden_create_finding_partition(date)", reads=()),
    DefinerFunction("warden_finding_default_rows()", reads=()),
    # The audit chain: the sealer may set only the chain columns of
    # audit records, never their content; retention removes a sealed prefix and records the cut.
    DefinerFunction(
        "warden_audit_seal(integer)",
        reads=("audit_record", "audit_head"),
        inserts=("audit_head",),
        updates=(
            ("audit_record", ("seq", "prev_hash", "hash", "sealed_at")),
            ("audit_head", ("seq", "hash", "sealed_at")),
        ),
    ),
    # Verification reads; the position it reached is recorded after its transaction, only
    # forward and only at a (seq, hash) the chain holds.
    DefinerFunction(
        "warden_audit_verify(boolean)",
        reads=("workspace", "audit_record", "audit_cut", "audit_head"),
    ),
    DefinerFunction(
        "warden_audit_verified(uuid, bigint, bytea)",
        reads=("audit_record", "audit_cut", "audit_head"),
        updates=(("audit_head", ("verified_seq", "verified_hash", "verified_at")),),
    ),
    # The deletion mark, set once; the deletions whose grace period is over.
    DefinerFunction(
        "warden_mark_workspace_deleted(uuid)",
        reads=("workspace",),
        updates=(("workspace", ("deleted_at", "deleted_by")),),
    ),
    DefinerFunction("warden_deletions_due(integer)", reads=("workspace",)),
    DefinerFunction(
        "warden_audit_retention(integer, integer)",
        reads=("workspace", "audit_record", "audit_denial", "user_event"),
        inserts=("audit_cut",),
        deletes=("audit_record", "audit_denial", "user_event"),
    ),
    DefinerFunction(
        "warden_record_denial(integer, text, text, text, text, text, text, text)",
        reads=(),
        inserts=("audit_denial",),
    ),
    DefinerFunction(
        "warden_purge_audit(uuid, integer)",
        reads=("workspace", "audit_record", "audit_cut"),
        deletes=("audit_record", "audit_cut"),
    ),
    # Invitations (change management): acceptance crosses from the user into the workspace,
    # the invitation notice from the workspace to a user who is not a member.
    DefinerFunction(
        "warden_accept_invitation(uuid, uuid, bytea)",
        reads=("app_user", "invitation", "workspace", "membership", "custom_role"),
        inserts=("membership",),
        updates=(("invitation", ("accepted_at", "accepted_by")),),
    ),
    DefinerFunction(
        "warden_notify_invitation(uuid)",
        reads=("invitation", "workspace", "app_user", "custom_role", "notification"),
        inserts=("notification",),
    ),
    DefinerFunction(
        "warden_notify_my_invitations()",
        reads=("invitation", "workspace", "app_user", "custom_role", "notification"),
        inserts=("notification",),
    ),
    DefinerFunction(
        "warden_platform_denials(integer, uuid)",
        reads=("app_user", "audit_denial"),
        platform=True,
    ),
)

# Cross-workspace upkeep, executable only by the maintenance role (the worker's cron jobs,
# WARDEN_MAINTENANCE_DATABASE_URL), never by the runtime role. Each is in DEFINER_FUNCTIONS.
MAINTENANCE_FUNCTIONS: frozenset[str] = frozenset(
    {
        "warden_outbox_pending(integer, integer)",
        "warden_outbox_mark_sent(uuid[])",
        "warden_prune_tasks(integer, integer)",
        "warden_expire_stuck_tasks(integer)",
        "warden_expired_task_leases(integer, integer)",
        "warden_prune_idempotency_keys()",
        "warden_create_finding_partition(date)",
        "warden_finding_default_rows()",
        "warden_audit_seal(integer)",
        "warden_audit_retention(integer, integer)",
        "warden_deletions_due(integer)",
    }
)

# Partitioned tables owned by the definer role (with every partition), so that a definer
# function may create partitions at run time.
DEFINER_OWNED_TABLES: tuple[str, ...] = ("finding",)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _role_exists(conn: AsyncConnection, role: str) -> bool:
    result = await conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    return result.scalar() is not None


@dataclass(frozen=True)
class Roles:
    runtime: str
    definer: str
    platform: str
    maintenance: str | None = None  # None: the maintenance functions are nobody's to run

    @property
    def function_owners(self) -> tuple[str, ...]:
        """The BYPASSRLS roles that own definer functions."""
        return (self.definer, self.platform)


async def ensure_roles(conn: AsyncConnection, roles: Roles, runtime_password: str | None) -> None:
    """Create or correct the runtime, definer and platform roles (needs CREATEROLE; BYPASSRLS
    for the two function owners needs a superuser on PostgreSQL 15 and older)."""
    runtime_role = roles.runtime
    rt = quote_ident(runtime_role)
    attrs = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"
    verb = "ALTER" if await _role_exists(conn, runtime_role) else "CREATE"
    password = f" PASSWORD {quote_literal(runtime_password)}" if runtime_password else ""
    await conn.execute(text(f"{verb} ROLE {rt} WITH {attrs}{password}"))

    cluster = await _is_citus(conn)
    for owner in roles.function_owners:
        verb = "ALTER" if await _role_exists(conn, owner) else "CREATE"
        await conn.execute(
            text(
                f"{verb} ROLE {quote_ident(owner)} WITH {'LOGIN' if cluster else 'NOLOGIN'} "
                "NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE"
            )
        )
    database = quote_ident((await conn.execute(text("SELECT current_database()"))).scalar_one())
    if cluster:
        # Citus forwards only literal SET LOCAL to workers, and only with this setting.
        await conn.execute(text(f"ALTER ROLE {rt} SET citus.propagate_set_commands = 'local'"))
        # A generic plan of a prepared statement over distributed tables cannot be routed to
        # its shard at plan time; Citus plans such statements per execution instead, and
        # forcing generic plans broke prepared joins. PostgreSQL's own choice stays.
        await conn.execute(text(f"ALTER ROLE {rt} IN DATABASE {database} RESET plan_cache_mode"))
    else:
        # Every statement the app runs is prepared and keyed by the tenant (workspace-leading
        # indexes, keyset pages): one generic plan per statement serves every workspace. Left
        # to choose, PostgreSQL kept re-planning the findings list on every execution (it is
        # partitioned, and the generic plan's estimate covers every partition before run-time
        # pruning), which cost 3.5x its execution time (`warden bench`, rls scenario).
        await conn.execute(
            text(
                f"ALTER ROLE {rt} IN DATABASE {database} SET plan_cache_mode = 'force_generic_plan'"
            )
        )
    lz4 = await conn.execute(
        text(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
            "WHERE name = 'default_toast_compression'"
        )
    )
    if lz4.scalar():
        # What the app writes that is large enough to be compressed (the raw record of each
        # imported finding, audit bodies) is compressed with lz4 rather than pglz: several
        # times faster to compress, similar size. Servers built without lz4 keep pglz.
        await conn.execute(
            text(f"ALTER ROLE {rt} IN DATABASE {database} SET default_toast_compression = 'lz4'")
        )


async def _is_citus(conn: AsyncConnection) -> bool:
    from app.db.citus import CITUS_SQL

    return bool((await conn.execute(text(CITUS_SQL))).scalar())


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def node_logins(conn: AsyncConnection, roles: Roles, runtime_password: str | None) -> None:
    """Citus: let the function owners (with a secret generated here once and kept) and the
    runtime role (with its password, when its URL has one) log in from one node to another.
    The password goes into `pg_dist_authinfo` on every node, which only superusers read;
    nothing of it is in the repository or the configuration. Runs after the roles exist on
    every node (committed): the workers are written over connections of their own. A no-op on
    plain PostgreSQL."""
    if not await _is_citus(conn):
        return
    logins: list[tuple[str, str]] = []
    for owner in roles.function_owners:
        stored = (
            await conn.execute(
                text(
                    "SELECT substring(authinfo FROM '^password=''(.*)''$') FROM pg_dist_authinfo "
                    "WHERE rolename = :r AND nodeid = 0"
                ),
                {"r": owner},
            )
        ).scalar()
        secret = stored or secrets.token_urlsafe(32)
        await conn.exec_driver_sql(
            f"ALTER ROLE {quote_ident(owner)} PASSWORD {quote_literal(secret)}"
        )
        logins.append((owner, secret))
    if runtime_password:
        logins.append((roles.runtime, runtime_password))
    for role, password in logins:
        upsert = (
            "INSERT INTO pg_catalog.pg_dist_authinfo (nodeid, rolename, authinfo) VALUES "
            f"(0, {quote_literal(role)}, {quote_literal('password=' + _conninfo_value(password))}) "
            "ON CONFLICT (rolename, nodeid) DO UPDATE SET authinfo = EXCLUDED.authinfo"
        )
        await conn.exec_driver_sql(upsert)
        failed = (
            await conn.execute(
                text(
                    "SELECT nodename, nodeport, result FROM run_command_on_workers(:c) "
                    "WHERE NOT success"
                ),
                {"c": upsert},
            )
        ).all()
        if failed:
            raise RuntimeError(f"could not store the node login of {role}: {failed}")


async def apply_privileges(conn: AsyncConnection, roles: Roles) -> None:
    """Reset and grant every privilege of the three roles on the database's public schema."""
    rt, df, pf = quote_ident(roles.runtime), quote_ident(roles.definer), quote_ident(roles.platform)
    if await _is_citus(conn):
        from app.db.citus import SEQUENTIAL

        await conn.execute(text(SEQUENTIAL))
    database = (await conn.execute(text("SELECT current_database()"))).scalar_one()
    mt = quote_ident(roles.maintenance) if roles.maintenance else None
    logins = f"{rt}, {mt}" if mt else rt
    # CONNECT only (no TEMPORARY: app.db.hardening revokes it from PUBLIC too).
    await conn.execute(text(f"GRANT CONNECT ON DATABASE {quote_ident(database)} TO {logins}"))
    await conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {logins}, {df}, {pf}"))
    await conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    # Only for warden_create_finding_partition (new partitions of a table it owns).
    await conn.execute(text(f"GRANT CREATE ON SCHEMA public TO {df}"))
    owned = await _definer_owned(conn)
    for table in owned:
        await conn.execute(text(f"ALTER TABLE {quote_ident(table)} OWNER TO {df}"))

    tables = (
        await conn.execute(
            text(
                "SELECT c.relname, c.relispartition "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') "
                # Not the objects of extensions (Citus adds views here).
                "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
                "AND d.objid = c.oid AND d.deptype = 'e') "
                "ORDER BY c.relname"
            )
        )
    ).all()
    for table, is_partition in tables:
        t = quote_ident(table)
        await conn.execute(text(f"REVOKE ALL ON {t} FROM {logins}, {df}, {pf}, PUBLIC"))
        if table in owned:
            # An owner's own privileges can be revoked too; the partition function needs them.
            await conn.execute(text(f"GRANT {', '.join(DML)} ON {t} TO {df}"))
        if is_partition:
            continue  # reached only through the parent, under the parent's policy
        privileges = RUNTIME_TABLE_PRIVILEGES.get(table, DML)
        if privileges:
            await conn.execute(text(f"GRANT {', '.join(privileges)} ON {t} TO {rt}"))
        for privilege, listed in RUNTIME_COLUMN_PRIVILEGES.get(table, {}).items():
            present = await _existing_columns(conn, table, listed)  # fewer at an earlier revision
            if present:
                cols = ", ".join(quote_ident(c) for c in present)
                await conn.execute(text(f"GRANT {privilege} ({cols}) ON {t} TO {rt}"))

    for fn in DEFINER_FUNCTIONS:
        exists = await conn.execute(text("SELECT to_regprocedure(:f)"), {"f": fn.signature})
        if exists.scalar() is None:
            continue  # not yet: a migration to an earlier revision
        owner = pf if fn.platform else df
        await conn.execute(text(f"ALTER FUNCTION {fn.signature} OWNER TO {owner}"))
        await conn.execute(text(f"REVOKE ALL ON FUNCTION {fn.signature} FROM PUBLIC, {logins}"))
        if fn.signature not in MAINTENANCE_FUNCTIONS:
            await conn.execute(text(f"GRANT EXECUTE ON FUNCTION {fn.signature} TO {rt}"))
        elif mt:
            await conn.execute(text(f"GRANT EXECUTE ON FUNCTION {fn.signature} TO {mt}"))
        existing = {name for name, _ in tables}
        for table in (t for t in fn.reads if t in existing):  # an earlier revision has fewer
            await conn.execute(text(f"GRANT SELECT ON {quote_ident(table)} TO {owner}"))
        for privilege, names in (("INSERT", fn.inserts), ("DELETE", fn.deletes)):
            for table in (t for t in names if t in existing):
                await conn.execute(text(f"GRANT {privilege} ON {quote_ident(table)} TO {owner}"))
        for update in fn.updates:
            if (update if isinstance(update, str) else update[0]) not in existing:
                continue
            if isinstance(update, str):
                await conn.execute(text(f"GRANT UPDATE ON {quote_ident(update)} TO {owner}"))
            else:
                table, columns = update
                cols = ", ".join(quote_ident(c) for c in columns)
                await conn.execute(
                    text(f"GRANT UPDATE ({cols}) ON {quote_ident(table)} TO {owner}")
                )


async def _existing_columns(
    conn: AsyncConnection, table: str, columns: tuple[str, ...]
) -> list[str]:
    rows = await conn.execute(
        text(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass(:t) "
            "AND attnum > 0 AND NOT attisdropped AND attname = ANY (:c)"
        ),
        {"t": f"public.{quote_ident(table)}", "c": list(columns)},
    )
    found = set(rows.scalars())
    return [c for c in columns if c in found]


async def _definer_owned(conn: AsyncConnection) -> list[str]:
    """The DEFINER_OWNED_TABLES that exist, with every partition of each."""
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname = ANY (:names) "
            "UNION "
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY (:names)"
        ),
        {"names": list(DEFINER_OWNED_TABLES)},
    )
    return sorted(rows.scalars())
