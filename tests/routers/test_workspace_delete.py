"""Async workspace deletion: hidden at once, rows removed in batches, then the workspace."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.conftest import make_settings
from tests.helpers import assert_problem, report_bytes, run_jobs, sample_report, upload_scan


async def _scoped_counts(admin_engine, workspace_id: str) -> dict[str, int]:
    async with admin_engine.connect() as conn:
        tables = (
            (
                await conn.execute(
                    text(
                        "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
                        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
                        "AND NOT c.relispartition AND a.attname = 'workspace_id'"
                    )
                )
            )
            .scalars()
            .all()
        )
        counts = {
            t: (
                await conn.execute(
                    text(f"SELECT count(*) FROM {t} WHERE workspace_id = :w"), {"w": workspace_id}
                )
            ).scalar_one()
            for t in tables
        }
        counts["workspace"] = (
            await conn.execute(
                text("SELECT count(*) FROM workspace WHERE id = :w"), {"w": workspace_id}
            )
        ).scalar_one()
    return counts


async def _populated(api, client, settings):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    admin = await api.user("admin")
    await api.add_member(owner, slug, admin, "admin")
    provider = await api.provider(owner, slug)
    await api.group(owner, slug, provider_ids=[provider["id"]])
    role = await client.post(
        f"/ws/{slug}/api/v1/roles",
        headers=owner.headers,
        json={"name": "custom", "inherits_from": "viewer"},
    )
    member = await api.user("custom")
    await api.add_member(owner, slug, member, role.json()["id"])
    for _ in range(2):
        r = await upload_scan(
            client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
        )
        assert r.status_code == 202
    await run_jobs(settings)
    return owner, admin, slug, await api.workspace_id(owner, slug)


async def test_owner_deletes_a_workspace(api, client, database, servers, settings, admin_engine):
    owner, admin, slug, ws = await _populated(api, client, settings)
    other_owner, _, other_slug, other_ws = await _populated(api, client, settings)
    before_other = await _scoped_counts(admin_engine, other_ws)
    assert (await _scoped_counts(admin_engine, ws))["finding"] == 10

    assert_problem(await client.delete(f"/api/v1/workspaces/{slug}", headers=admin.headers), 403)
    assert_problem(
        await client.delete(f"/api/v1/workspaces/{slug}", headers=other_owner.headers), 404
    )
    r = await client.delete(f"/api/v1/workspaces/{slug}", headers=owner.headers)
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "workspace.delete" and r.json()["state"] == "pending"
    assert r.json()["resource_id"] == ws

    # Gone at once, for everyone, before any row is removed.
    for user in (owner, admin):
        assert_problem(await client.get(f"/ws/{slug}/api/v1/providers", headers=user.headers), 404)
        listed = (await client.get("/api/v1/workspaces", headers=user.headers)).json()["data"]
        assert slug not in {w["slug"] for w in listed}
    assert_problem(await client.delete(f"/api/v1/workspaces/{slug}", headers=owner.headers), 404)

    small = make_settings(database, servers, workspace_delete_batch=3)  # many batches
    await run_jobs(small)
    assert set((await _scoped_counts(admin_engine, ws)).values()) == {0}
    assert await _scoped_counts(admin_engine, other_ws) == before_other
    assert len(await api.all(other_owner, other_slug, "findings")) == 10
    # The slug is free again.
    assert await api.workspace(owner, slug) == slug


async def test_pending_jobs_of_a_deleted_workspace_are_refused(api, client, settings, admin_engine):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    task_id = r.json()["id"]
    ws = await api.workspace_id(owner, slug)
    # The import is claimed by a worker only after the deletion hid the workspace.
    assert (
        await client.delete(f"/api/v1/workspaces/{slug}", headers=owner.headers)
    ).status_code == 202
    async with admin_engine.connect() as conn:
        outbox = (
            await conn.execute(
                text("SELECT o.id FROM outbox o WHERE o.task_id = :t"), {"t": task_id}
            )
        ).scalar_one()
    # Run only the import first (the deletion job is taken out of the queue for a moment).
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    pool = ArqRedis(ConnectionPool.from_url(settings.redis_url))
    try:
        queued = await pool.zrange(settings.job_queue_name, 0, -1, withscores=True)
        others = {k: v for k, v in queued if k != str(outbox).encode()}
        await pool.zrem(settings.job_queue_name, *others)
        await run_jobs(settings)
        async with admin_engine.connect() as conn:
            state, error = (
                await conn.execute(
                    text("SELECT state, error FROM task WHERE id = :t"), {"t": task_id}
                )
            ).one()
        assert state == "refused" and "deleted" in error
        await pool.zadd(settings.job_queue_name, others)
    finally:
        await pool.aclose(close_connection_pool=True)
    await run_jobs(settings)
    assert set((await _scoped_counts(admin_engine, ws)).values()) == {0}
    assert uuid.UUID(ws)


async def test_deleting_needs_to_see_every_provider(api, client):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    role = await client.post(
        f"/ws/{slug}/api/v1/roles",
        headers=owner.headers,
        json={
            "name": "blind-owner",
            "inherits_from": "owner",
            "revokes": ["unlimited_visibility"],
        },
    )
    assert role.status_code == 201, role.text
    member = await api.user("blind")
    await api.add_member(owner, slug, member, role.json()["id"])
    body = assert_problem(
        await client.delete(f"/api/v1/workspaces/{slug}", headers=member.headers), 403
    )
    assert "unlimited_visibility" in body["detail"]
    assert (
        await client.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
    ).status_code == 200
