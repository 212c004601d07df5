"""The catalog meta-test: the same code as `warden check --rls`, on the live migrated database,
and proof that it fails on each kind of violation."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.db.base import Base
from app.db.catalog import rls_problems
from app.db.hardening import FUNCTION_FLOORS
from app.db.roles import DEFINER_FUNCTIONS, MAINTENANCE_FUNCTIONS


async def test_migrated_database_conforms(admin_engine, database):
    async with admin_engine.connect() as conn:
        assert (
            await rls_problems(conn, database["runtime_role"], database["maintenance_role"]) == []
        )


def test_the_maintenance_functions_are_definer_functions():
    signatures = {fn.signature for fn in DEFINER_FUNCTIONS}
    assert MAINTENANCE_FUNCTIONS <= signatures
    assert set(FUNCTION_FLOORS) <= MAINTENANCE_FUNCTIONS


async def test_every_model_table_exists_and_is_checked(admin_engine):
    async with admin_engine.connect() as conn:
        tables = set(
            (
                await conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname='public'")
                )
            ).scalars()
        )
    assert set(Base.metadata.tables) <= tables


VIOLATIONS = {
    "table without policy": (
        "CREATE TABLE rogue (workspace_id uuid, id uuid, PRIMARY KEY (workspace_id, id))",
        "rogue: row level security is not enabled",
    ),
    "unclassified table": ("CREATE TABLE rogue (id uuid)", "rogue: neither workspace_id"),
    "rls not forced": (
        "ALTER TABLE provider NO FORCE ROW LEVEL SECURITY",
        "provider: row level security is not forced",
    ),
    "second permissive policy": (
        "CREATE POLICY wide ON provider FOR SELECT USING (true)",
        "provider: expected exactly one policy, found 2",
    ),
    "restrictive policy": (
        "CREATE POLICY narrow ON provider AS RESTRICTIVE FOR ALL USING (true)",
        "provider: restrictive policy narrow exists",
    ),
    "policy with a subquery": (
        "ALTER POLICY tenant_isolation ON provider USING (workspace_id IN "
        "(SELECT id FROM workspace))",
        "provider: policy qual is",
    ),
    "policy on a stale setting form": (
        "ALTER POLICY tenant_isolation ON provider USING "
        "(workspace_id::text = current_setting('app.current_workspace_id', true))",
        "provider: policy qual is",
    ),
    "unique key without workspace_id": (
        # (on uid and id: whatever rows other tests left, the index can be built)
        "CREATE UNIQUE INDEX rogue_uid ON provider (uid, id)",
        "provider: unique index rogue_uid does not include workspace_id",
    ),
    "foreign key without workspace_id": (
        "ALTER TABLE provider_group_member ADD CONSTRAINT rogue_fk FOREIGN KEY (provider_id) "
        "REFERENCES provider (id)",
        None,  # refused by PostgreSQL itself: provider.id alone is not unique
    ),
    "view without security_invoker": (
        "CREATE VIEW rogue_view AS SELECT * FROM provider",
        "view rogue_view is not security_invoker",
    ),
    "definer function without search_path": (
        "CREATE FUNCTION rogue_fn() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        "SECURITY DEFINER function rogue_fn does not pin search_path",
    ),
    "definer function with pg_temp not last": (
        "CREATE FUNCTION rogue_fn() RETURNS int LANGUAGE sql SECURITY DEFINER "
        "SET search_path = pg_temp, public AS 'SELECT 1'",
        "SECURITY DEFINER function rogue_fn does not put pg_temp last",
    ),
    "definer function without pg_temp": (
        "CREATE FUNCTION rogue_fn() RETURNS int LANGUAGE sql SECURITY DEFINER "
        "SET search_path = public AS 'SELECT 1'",
        "SECURITY DEFINER function rogue_fn does not put pg_temp last",
    ),
    "users without forced rls": (
        "ALTER TABLE app_user NO FORCE ROW LEVEL SECURITY",
        "app_user: row level security is not forced",
    ),
    "users readable by everyone": (
        "ALTER POLICY tenant_isolation ON app_user USING (true)",
        "app_user: policy qual is",
    ),
}
# What Citus itself refuses on a distributed table, before any check could see it.
REFUSED_BY_CITUS = {
    "policy with a subquery": "cannot create policy",
    "unique key without workspace_id": "unique indexes on non-partition columns",
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
async def test_check_catches(name, admin_engine, database):
    ddl, expected = VIOLATIONS[name]
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            if database["citus"] and name in REFUSED_BY_CITUS:
                with pytest.raises(Exception, match=REFUSED_BY_CITUS[name]):
                    await conn.execute(text(ddl))
                return
            if expected is None:
                with pytest.raises(Exception, match="no unique constraint"):
                    await conn.execute(text(ddl))
                return
            await conn.execute(text(ddl))
            problems = await rls_problems(conn, database["runtime_role"])
            assert any(p.startswith(expected) for p in problems), problems
        finally:
            await trans.rollback()


async def test_check_covers_every_workspace_table(admin_engine, database):
    """Generated from the catalog, not a list: every table with a `workspace_id` (those a
    migration made with `create_table(..., scope=...)`, `audit_head` among them) fails the
    check as soon as its row level security is no longer forced."""
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            tables = list(
                (
                    await conn.execute(
                        text(
                            "SELECT c.relname FROM pg_class c JOIN pg_attribute a "
                            "ON a.attrelid = c.oid AND a.attname = 'workspace_id' "
                            "WHERE c.relnamespace = 'public'::regnamespace "
                            "AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
                            "ORDER BY c.relname"
                        )
                    )
                ).scalars()
            )
            assert {"audit_head", "audit_record", "audit_cut", "provider"} <= set(tables)
            for table in tables:
                await conn.execute(text("SAVEPOINT unforced"))
                await conn.execute(text(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY'))
                problems = await rls_problems(conn, database["runtime_role"])
                assert f"{table}: row level security is not forced" in problems, problems
                await conn.execute(text("ROLLBACK TO SAVEPOINT unforced"))
        finally:
            await trans.rollback()


@pytest.mark.parametrize("privilege", ["TRUNCATE", "REFERENCES", "TRIGGER"])
async def test_check_catches_forbidden_privilege(privilege, admin_engine, database):
    role = database["runtime_role"]
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text(f'GRANT {privilege} ON provider TO "{role}"'))
            problems = await rls_problems(conn, role)
            assert f"runtime role {role} has {privilege} on provider" in problems
        finally:
            await trans.rollback()


@pytest.mark.parametrize(
    "attribute,expected", [("BYPASSRLS", "has BYPASSRLS"), ("SUPERUSER", "is a superuser")]
)
async def test_check_catches_role_attributes(attribute, expected, admin_engine, database):
    role = database["runtime_role"]
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text(f'ALTER ROLE "{role}" {attribute}'))
            problems = await rls_problems(conn, role)
            assert f"runtime role {role} {expected}" in problems
        finally:
            await trans.rollback()


# Privileges beyond tables: {rt} the runtime role, {mt} the maintenance role, {db} the database.
LOGIN_VIOLATIONS = {
    "runtime may run upkeep": (
        "GRANT EXECUTE ON FUNCTION warden_prune_idempotency_keys() TO {rt}",
        "runtime role {rt_name} may execute maintenance function warden_prune_idempotency_keys()",
    ),
    "public may run upkeep": (
        "GRANT EXECUTE ON FUNCTION warden_audit_seal(integer) TO PUBLIC",
        "PUBLIC may execute maintenance function warden_audit_seal(integer)",
    ),
    "maintenance may not run upkeep": (
        "REVOKE EXECUTE ON FUNCTION warden_audit_seal(integer) FROM {mt}",
        "maintenance role {mt_name} may not execute warden_audit_seal(integer)",
    ),
    "maintenance reads a table": (
        "GRANT SELECT ON provider TO {mt}",
        "maintenance role {mt_name} has privileges on provider",
    ),
    "maintenance runs a request function": (
        "GRANT EXECUTE ON FUNCTION warden_schema_version() TO {mt}",
        "maintenance role {mt_name} may execute warden_schema_version()",
    ),
    "maintenance bypasses rls": (
        "ALTER ROLE {mt} BYPASSRLS",
        "maintenance role {mt_name} has bypassrls",
    ),
    "runtime temporary tables": (
        "GRANT TEMPORARY ON DATABASE {db} TO {rt}",
        "runtime role {rt_name} may create temporary tables",
    ),
    "public temporary tables": (
        "GRANT TEMPORARY ON DATABASE {db} TO PUBLIC",
        "PUBLIC may create temporary tables",
    ),
    "large objects": (
        "GRANT EXECUTE ON FUNCTION lo_create(oid) TO PUBLIC",
        "PUBLIC may execute large-object function lo_create(oid)",
    ),
    "no statement timeout": (
        "ALTER ROLE {rt} IN DATABASE {db} RESET statement_timeout",
        "runtime role {rt_name} has no statement_timeout in this database",
    ),
    "no idle timeout": (
        "ALTER ROLE {rt} IN DATABASE {db} SET idle_in_transaction_session_timeout = 0",
        "runtime role {rt_name} has no idle_in_transaction_session_timeout in this database",
    ),
}


@pytest.mark.parametrize("name", list(LOGIN_VIOLATIONS))
async def test_check_catches_login_privileges(name, admin_engine, database):
    names = {
        "rt_name": database["runtime_role"],
        "mt_name": database["maintenance_role"],
        "rt": f'"{database["runtime_role"]}"',
        "mt": f'"{database["maintenance_role"]}"',
        "db": f'"{database["name"]}"',
    }
    ddl, expected = (part.format(**names) for part in LOGIN_VIOLATIONS[name])
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text(ddl))
            problems = await rls_problems(
                conn, database["runtime_role"], database["maintenance_role"]
            )
            assert expected in problems, problems
        finally:
            await trans.rollback()


async def test_check_catches_ownership(admin_engine, database):
    role = database["runtime_role"]
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text(f'ALTER TABLE provider OWNER TO "{role}"'))
            problems = await rls_problems(conn, role)
            assert f"runtime role {role} owns provider" in problems
        finally:
            await trans.rollback()


async def test_runtime_role_attributes(admin_engine, database):
    async with admin_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
                    "WHERE rolname = :r"
                ),
                {"r": database["runtime_role"]},
            )
        ).one()
        assert tuple(row) == (False, False, False, False)
        definer = (
            await conn.execute(
                text("SELECT rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname = :r"),
                {"r": database["definer_role"]},
            )
        ).one()
        # On Citus it logs in between the nodes (with a secret only they hold).
        assert tuple(definer) == (database["citus"], True)


async def test_the_runtime_role_plans_its_statements_once(runtime_engine, database):
    """`warden migrate` gives the runtime role generic plans for its prepared statements (one
    plan per statement serves every workspace; see app.db.roles; on Citus PostgreSQL's own
    choice, as generic plans cannot be routed to a shard), and lz4 for compressed values where
    the server has it."""
    async with runtime_engine.connect() as conn:
        mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
        compression = (await conn.execute(text("SHOW default_toast_compression"))).scalar_one()
        has_lz4 = (
            await conn.execute(
                text(
                    "SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
                    "WHERE name = 'default_toast_compression'"
                )
            )
        ).scalar_one()
    assert mode == ("auto" if database["citus"] else "force_generic_plan")
    assert compression == ("lz4" if has_lz4 else "pglz")
