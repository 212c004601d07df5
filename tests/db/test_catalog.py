"""The catalog meta-test: the same code as `warden check --rls`, on the live migrated database,
and proof that it fails on each kind of violation."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.db.base import Base
from app.db.catalog import rls_problems


async def test_migrated_database_conforms(admin_engine, database):
    async with admin_engine.connect() as conn:
        assert await rls_problems(conn, database["runtime_role"]) == []


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
        "CREATE UNIQUE INDEX rogue_uid ON provider (uid)",
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
