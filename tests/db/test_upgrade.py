"""Existing installations: one at revision 0005 (before the keys and functions became
Citus-compatible) upgrades to exactly the schema of a fresh one, its data intact (denials of
nobody rekeyed, a task's scan kept, the audit chain still verifying); and a single-node
installation moved onto a Citus coordinator is distributed, rows and all, by `warden migrate`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db.catalog import rls_problems
from app.db.migrate import _upgrade, migrate
from app.db.models.audit import NOBODY
from app.db.partitions import new_uuid7
from app.db.roles import Roles, apply_privileges, ensure_roles, node_logins
from app.db.session import Database
from app.db.tenant import Visibility, apply_context
from app.services.audit_chain import verify_chain
from tests import cluster
from tests.conftest import _create_database, _drop_database
from tests.servers import unique

# What the catalog says about a schema, minus names that differ by nature (none here: the
# same roles, the same day's partitions).
SNAPSHOT = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' ORDER BY 1, 2""",
    "policies": """
        SELECT tablename, policyname, permissive, cmd, qual, with_check FROM pg_policies
        WHERE schemaname = 'public' ORDER BY 1, 2""",
    "tables": """
        SELECT relname, relkind::text, relrowsecurity, relforcerowsecurity,
               pg_get_userbyid(relowner), relacl::text
        FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v')
        ORDER BY 1""",
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid),
               pg_get_userbyid(p.proowner), p.proacl::text
        FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1""",
}


async def _snapshot(url: str) -> dict[str, list[Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {k: [tuple(r) for r in await conn.execute(text(q))] for k, q in SNAPSHOT.items()}
    finally:
        await engine.dispose()


async def _populate(admin_url: str, nobody: uuid.UUID | None) -> dict[str, uuid.UUID]:
    """Rows an installation has: a member of a workspace, a provider, a finished task and the
    scan it imported, denials of a user and of nobody (`nobody`: how its schema says so), and
    sealed audit records."""
    ids = {k: uuid.uuid4() for k in ("user", "ws", "provider", "task", "scan")}
    ids["finding"] = new_uuid7()  # this month's partition
    engine = create_async_engine(admin_url)
    try:
        async with engine.begin() as conn:
            statements = [
                "INSERT INTO app_user (id, email, name, password_hash) "
                "VALUES (:user, :email, 'old', 'x')",
                "INSERT INTO workspace (id, slug, name) VALUES (:ws, :slug, 'Old')",
                "INSERT INTO membership (workspace_id, user_id, role) VALUES (:ws, :user, 'owner')",
                "INSERT INTO provider (workspace_id, id, provider_type, uid) "
                "VALUES (:ws, :provider, 'aws', '123456789012')",
                "INSERT INTO task (workspace_id, id, kind, state, created_by, provider_id, "
                "finished_at) VALUES (:ws, :task, 'scan.import', 'succeeded', :user, :provider, "
                "now())",
                "INSERT INTO scan (workspace_id, id, provider_id, task_id, file_name, file_size, "
                "file_sha256, created_by) VALUES (:ws, :scan, :provider, :task, 'r.json', 1, "
                "'00', :user)",
                "INSERT INTO audit_denial (id, user_id, status, reason, method, path) "
                "VALUES (gen_random_uuid(), :nobody, 401, 'x', 'GET', '/ws/a/api/v1/providers')",
                "INSERT INTO audit_denial (id, user_id, status, reason, method, path) "
                "VALUES (gen_random_uuid(), :user, 404, 'x', 'GET', '/ws/b/api/v1/providers')",
                "INSERT INTO finding (workspace_id, id, scan_id, provider_id, uid, check_id, "
                "title, severity, status, raw, inserted_at) VALUES (:ws, :finding, :scan, "
                ":provider, 'f-1', 'check', 'A finding', 'high', 'FAIL', '{}', now())",
            ]
            values = {
                **ids,
                "email": f"{ids['user'].hex}@example.com",
                "slug": ids["ws"].hex,
                "nobody": nobody,
            }
            for statement in statements:
                await conn.execute(text(statement), values)
            for i in range(3):
                await conn.execute(
                    text(
                        "INSERT INTO audit_record (workspace_id, id, user_id, action, method, "
                        "path, status, body, created_at) VALUES (:ws, :id, :user, 'create', "
                        "'POST', '/ws/x/api/v1/providers', 201, :body, "
                        "'2024-05-01 12:00:00.123456+02'::timestamptz + make_interval(secs => :i))"
                    ),
                    {**ids, "id": uuid.uuid4(), "i": i, "body": f'{{"alias": "p{i}", "n": {i}}}'},
                )
        async with engine.begin() as conn:
            sealed = await conn.execute(text("SELECT sum(sealed) FROM warden_audit_seal(100)"))
            assert sealed.scalar_one() == 3
    finally:
        await engine.dispose()
    return ids


async def _check_data(database: dict[str, Any], url: str, ids: dict[str, uuid.UUID]) -> None:
    """The rows are there for the runtime role in the workspace's context; the chain sealed
    before the upgrade still verifies; the denial of nobody is filed under NOBODY."""
    admin = create_async_engine(url)
    runtime = create_async_engine(_runtime_url(database, url))
    try:
        async with admin.connect() as conn:
            denials = await conn.execute(text("SELECT user_id FROM audit_denial ORDER BY status"))
            assert [r.user_id for r in denials] == [NOBODY, ids["user"]]
            task_of_scan = await conn.execute(
                text("SELECT task_id FROM scan WHERE id = :s"), {"s": ids["scan"]}
            )
            assert task_of_scan.scalar_one() == ids["task"]
        async with Database(runtime).transaction() as tx:
            await apply_context(tx, ids["ws"], ids["user"], Visibility(True))
            providers = await tx.fetch("SELECT id FROM provider")
            assert [r["id"] for r in providers] == [ids["provider"]]
            findings = await tx.fetch("SELECT id FROM finding")
            assert [r["id"] for r in findings] == [ids["finding"]]
            check = await verify_chain(SimpleNamespace(session=tx.session, workspace_id=ids["ws"]))
        assert check["ok"] and check["sealed"] == 3, check
    finally:
        await admin.dispose()
        await runtime.dispose()


@asynccontextmanager
async def _empty_database(database: dict[str, Any], servers: Any) -> AsyncIterator[str]:
    """Another, empty database beside the test database (on every node of a cluster)."""
    name = unique("warden_upgrade")
    if database["citus"]:
        url = (await cluster.create_database(str(servers.citus_url), name))[0]
    else:
        url = await _create_database(servers.postgres_admin_url, name)
    try:
        yield url
    finally:
        if database["citus"]:
            await cluster.drop_database(str(servers.citus_url), name, [])
        else:
            await _drop_database(servers.postgres_admin_url, name, [])


@pytest.fixture
async def other_database(database: dict[str, Any], servers: Any) -> AsyncIterator[str]:
    async with _empty_database(database, servers) as url:
        yield url


def _roles(database: dict[str, Any]) -> tuple[str, str, str]:
    return database["runtime_role"], database["definer_role"], database["platform_role"]


def _runtime_url(database: dict[str, Any], admin_url: str) -> str:
    runtime = make_url(database["runtime_url"])
    return (
        make_url(admin_url)
        .set(username=runtime.username, password=runtime.password)
        .render_as_string(hide_password=False)
    )


async def test_an_installation_at_0005_upgrades_to_the_schema_of_a_fresh_one(
    database, servers, other_database
):
    if database["citus"]:
        pytest.skip("no installation ran on Citus before 0006 (see the next test)")
    runtime, definer, platform = _roles(database)
    runtime_url = _runtime_url(database, other_database)
    await migrate(other_database, runtime_url, definer, platform, revision="0005")
    ids = await _populate(other_database, None)
    await migrate(other_database, runtime_url, definer, platform)
    async with _empty_database(database, servers) as fresh:
        await migrate(fresh, _runtime_url(database, fresh), definer, platform)
        assert await _snapshot(other_database) == await _snapshot(fresh)
    await _check_data(database, other_database, ids)


async def test_a_single_node_installation_moved_onto_citus_is_distributed(database, other_database):
    """A restored dump of a single-node installation (its tables local on the coordinator,
    with rows): `warden migrate` distributes every table, copying the rows into shards."""
    if not database["citus"]:
        pytest.skip("runs on a Citus cluster (make test-citus)")
    runtime, definer, platform = _roles(database)
    roles = Roles(runtime, definer, platform)
    password = make_url(database["runtime_url"]).password
    # What the dump restores: the schema at head, without any distribution, and its rows.
    engine: AsyncEngine = create_async_engine(other_database)
    try:
        async with engine.begin() as conn:
            await ensure_roles(conn, roles, password)
        async with engine.begin() as conn:
            await node_logins(conn, roles, password)
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, "head")
        async with engine.begin() as conn:
            await apply_privileges(conn, roles)
        async with engine.connect() as conn:
            local = await conn.execute(text("SELECT count(*) FROM pg_dist_partition"))
            assert local.scalar_one() == 0
    finally:
        await engine.dispose()
    ids = await _populate(other_database, NOBODY)
    await migrate(other_database, _runtime_url(database, other_database), definer, platform)
    for node in await cluster.nodes(other_database):
        url = (
            make_url(other_database)
            .set(host=node.host, port=node.port)
            .render_as_string(hide_password=False)
        )
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                assert await rls_problems(conn, runtime) == [], url
        finally:
            await engine.dispose()
    await _check_data(database, other_database, ids)
