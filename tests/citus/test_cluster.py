"""Warden on a Citus cluster (`make test-citus`): how `warden migrate` distributed the tables, the
node logins of the function owners, and `warden check --rls` on every node, including that it
still fails on a shard a worker holds without forced RLS or with a second policy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.checks import run_checks
from app.db.catalog import rls_problems
from app.db.citus import LOCAL_TABLES
from app.services.maintenance import ensure_partitions
from tests.conftest import make_settings

pytestmark = pytest.mark.citus


@pytest.fixture(autouse=True)
def _on_citus(database: dict[str, Any]) -> None:
    if not database["citus"]:
        pytest.skip("runs on a Citus cluster (make test-citus)")


async def _distribution(conn: AsyncConnection) -> dict[str, tuple[str, str | None, int]]:
    """Every table of the public schema (no extension objects): (kind, column, group)."""
    rows = await conn.execute(
        text("""
            SELECT c.relname,
                   CASE WHEN p.logicalrelid IS NULL THEN 'local'
                        WHEN p.partmethod = 'n' AND p.repmodel = 't' THEN 'reference'
                        WHEN p.partmethod = 'h' THEN 'distributed' ELSE 'other' END AS kind,
                   column_to_column_name(p.logicalrelid, p.partkey) AS col, p.colocationid
            FROM pg_class c LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
        """)
    )
    return {r.relname: (r.kind, r.col, r.colocationid) for r in rows}


async def test_every_table_is_distributed_or_reference(admin_engine):
    async with admin_engine.connect() as conn:
        tables = await _distribution(conn)
        columns = {
            r.table_name: r.cols
            for r in await conn.execute(
                text(
                    "SELECT table_name, array_agg(column_name::text) AS cols "
                    "FROM information_schema.columns WHERE table_schema = 'public' "
                    "GROUP BY table_name"
                )
            )
        }
    assert {t for t, (kind, _, _) in tables.items() if kind == "local"} == set(LOCAL_TABLES)
    assert {t for t, (kind, _, _) in tables.items() if kind == "reference"} == {
        "app_user",
        "workspace",
    }
    by_workspace = {t for t in tables if t != "workspace" and "workspace_id" in columns[t]}
    by_user = {t for t in tables if "user_id" in columns[t]} - by_workspace
    assert {"provider", "membership", "finding", "audit_record", "task"} <= by_workspace
    assert {"auth_session", "user_event", "audit_denial", "api_key", "notification"} <= by_user
    for group, column in ((by_workspace, "workspace_id"), (by_user, "user_id")):
        assert {tables[t][:2] for t in group} == {("distributed", column)}
        assert len({tables[t][2] for t in group}) == 1, "one co-location group per column"
    assert tables["provider"][2] != tables["auth_session"][2]


async def test_the_check_passes_on_every_node(database, servers):
    settings = make_settings(
        database, servers, environment="production", signup_enabled=False, require_tls=True
    )
    assert len(database["node_urls"]) == 3
    assert await run_checks(settings, rls=True, database_urls=database["node_urls"]) == []


async def _worker_shard(conn: AsyncConnection, table: str) -> str:
    """The name of a shard of `table` that this (worker) node holds."""
    name = (
        await conn.execute(
            text(
                "SELECT shard_name(s.logicalrelid, s.shardid) FROM pg_dist_shard s "
                "JOIN pg_dist_placement p ON p.shardid = s.shardid "
                "WHERE s.logicalrelid = to_regclass(:t) AND p.groupid = "
                "(SELECT groupid FROM pg_dist_local_group) ORDER BY s.shardid LIMIT 1"
            ),
            {"t": table},
        )
    ).scalar_one()
    return str(name).removeprefix("public.")


BROKEN_SHARDS = {
    "rls not forced": (
        "ALTER TABLE {shard} NO FORCE ROW LEVEL SECURITY",
        "row level security is not forced",
    ),
    "rls disabled": (
        "ALTER TABLE {shard} DISABLE ROW LEVEL SECURITY",
        "row level security is not enabled",
    ),
    "second policy": (
        "CREATE POLICY wide ON {shard} FOR SELECT USING (true)",
        "expected exactly one policy, found 2",
    ),
    "policy widened": (
        "ALTER POLICY tenant_isolation ON {shard} USING (true)",
        "policy qual is 'true'",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN_SHARDS))
@pytest.mark.parametrize("table", ["provider", "audit_denial", "finding_default"])
async def test_the_check_fails_on_a_broken_shard(name, table, database):
    """Changed on one worker, on one shard only (as an operator or an attack could): the check
    of that worker names the shard and its table; nothing else on the node is reported."""
    ddl, expected = BROKEN_SHARDS[name]
    engine = create_async_engine(database["node_urls"][1])
    try:
        async with engine.connect() as conn:
            trans = await conn.begin()
            try:
                assert await rls_problems(conn, database["runtime_role"]) == []
                shard = await _worker_shard(conn, table)
                await conn.execute(text("SET LOCAL citus.enable_manual_changes_to_shards TO on"))
                await conn.execute(text(ddl.format(shard=shard)))
                problems = await rls_problems(conn, database["runtime_role"])
                assert len(problems) == 1, problems
                assert problems[0].startswith(f"{shard} (shard of {table}): {expected}"), problems
            finally:
                await trans.rollback()
    finally:
        await engine.dispose()


DISTRIBUTION_VIOLATIONS = {
    "a local table": (["SELECT 1"], "rogue: a local table"),
    "distributed by another column": (
        ["SELECT create_distributed_table('rogue', 'id', colocate_with => 'provider')"],
        "rogue: expected distribution by workspace_id",
    ),
    "a co-location group of its own": (
        ["SELECT create_distributed_table('rogue', 'workspace_id', colocate_with => 'none')"],
        "tables distributed by workspace_id are not co-located",
    ),
    "a reference table": (
        ["SELECT create_reference_table('rogue')"],
        "rogue: expected distribution by workspace_id",
    ),
}


@pytest.mark.parametrize("name", list(DISTRIBUTION_VIOLATIONS))
async def test_the_check_fails_on_a_table_distributed_otherwise(name, admin_engine, database):
    statements, expected = DISTRIBUTION_VIOLATIONS[name]
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
            await conn.execute(
                text(
                    "CREATE TABLE rogue (workspace_id uuid, id uuid, PRIMARY KEY (workspace_id, id))"
                )
            )
            for statement in statements:
                await conn.execute(text(statement))
            problems = await rls_problems(conn, database["runtime_role"])
            assert any(p.startswith(expected) for p in problems), problems
        finally:
            await trans.rollback()


async def test_function_owners_log_in_between_nodes_with_a_secret(database):
    """Citus reaches other nodes as a definer function's owner: it can log in, with a password
    only the nodes hold (`pg_dist_authinfo`, on every node), the same after another migrate."""
    owners = [database["definer_role"], database["platform_role"]]
    seen: list[dict[str, Any]] = []
    for url in database["node_urls"]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                roles = await conn.execute(
                    text(
                        "SELECT rolname, rolcanlogin, rolpassword IS NOT NULL AS has_password "
                        "FROM pg_authid WHERE rolname = ANY (:r)"
                    ),
                    {"r": owners},
                )
                assert sorted(tuple(r) for r in roles) == sorted((o, True, True) for o in owners)
                info = await conn.execute(
                    text(
                        "SELECT rolename::text, authinfo FROM pg_dist_authinfo "
                        "WHERE nodeid = 0 AND rolename = ANY (:r)"
                    ),
                    {"r": [*owners, database["runtime_role"]]},
                )
                stored = dict(info.all())
        finally:
            await engine.dispose()
        assert set(stored) == {*owners, database["runtime_role"]}
        assert all(v.startswith("password=") and len(v) > 30 for v in stored.values())
        seen.append(stored)
    assert all(s == seen[0] for s in seen), "every node holds the same secrets"


async def test_partitions_made_at_run_time_are_distributed_with_their_policy(
    database, maintenance_db
):
    """The cron's partition function on Citus: months ahead are created (in sequential mode),
    distributed with `finding`, and every shard carries the policy."""
    result = await ensure_partitions(maintenance_db, ahead=6)
    assert result["created"], result
    admin = create_async_engine(database["admin_url"])
    try:
        async with admin.connect() as conn:
            tables = await _distribution(conn)
            assert await rls_problems(conn, database["runtime_role"]) == []
    finally:
        await admin.dispose()
    for name in result["created"]:
        assert tables[name][:2] == ("distributed", "workspace_id")
        assert tables[name][2] == tables["finding"][2]
