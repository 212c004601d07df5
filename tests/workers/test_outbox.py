"""The outbox: nothing sent on rollback, nothing lost while Redis is down, one run per job."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from app.services import outbox
from tests.conftest import make_settings
from tests.helpers import Api, report_bytes, run_jobs, sample_report, serve, upload_scan
from workers import cron


async def _queue(arq_pool, settings) -> list[bytes]:
    return list(await arq_pool.zrange(settings.job_queue_name, 0, -1))


async def test_rolled_back_request_sends_nothing(
    api, client, settings, arq_pool, admin_engine, database
):
    """The scan, its task and its outbox row are written, then COMMIT fails: no job."""
    if database["citus"]:
        pytest.skip(
            "the failure at COMMIT is made by a trigger, which Citus refuses on distributed tables"
        )
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    before = await _queue(arq_pool, settings)
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("""
            CREATE FUNCTION test_fail_scan_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.file_name = 'fail-at-commit.json' THEN
                    RAISE EXCEPTION 'deferred failure' USING ERRCODE = '40001';
                END IF;
                RETURN NEW;
            END $$""")
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER test_fail_scan_at_commit AFTER INSERT ON scan "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "EXECUTE FUNCTION test_fail_scan_at_commit()"
            )
        )
    try:
        r = await upload_scan(
            client,
            owner,
            slug,
            provider["id"],
            report_bytes(sample_report("aws", provider["uid"])),
            name="fail-at-commit.json",
        )
        assert r.status_code >= 500, r.text
    finally:
        async with admin_engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_fail_scan_at_commit ON scan"))
            await conn.execute(text("DROP FUNCTION test_fail_scan_at_commit()"))
    assert await _queue(arq_pool, settings) == before
    ws = await api.workspace_id(owner, slug)
    async with admin_engine.connect() as conn:
        for table in ("scan", "task", "outbox", "scan_upload"):
            count = (
                await conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE workspace_id = :w"), {"w": ws}
                )
            ).scalar_one()
            assert count == 0, table


async def test_redis_down_during_the_request_the_job_runs_when_it_is_back(
    database, servers, admin_engine, throwaway_redis
):
    settings = make_settings(database, servers, redis_url=throwaway_redis.url)
    async with serve(settings) as (_, client):
        api = Api(client)
        owner = await api.user("owner")
        slug = await api.workspace(owner)
        provider = await api.provider(owner, slug)
        throwaway_redis.stop()
        started = time.monotonic()
        r = await upload_scan(
            client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
        )
        assert r.status_code == 202, r.text
        assert time.monotonic() - started < 5
        task_url = r.headers["content-location"]
        async with admin_engine.connect() as conn:
            sent = (
                await conn.execute(
                    text("SELECT sent_at FROM outbox WHERE task_id = :t"), {"t": r.json()["id"]}
                )
            ).scalar_one()
        assert sent is None  # kept for the sweeper
        assert (await client.get(task_url, headers=owner.headers)).json()["state"] == "pending"

        throwaway_redis.start()  # empty: whatever was queued before is gone too
        worker = await run_jobs(settings)  # its startup sweeps the outbox
        assert worker.jobs_complete == 1
        task = (await client.get(task_url, headers=owner.headers)).json()
        assert task["state"] == "succeeded" and task["result"]["imported"] == 5


async def test_a_job_sent_twice_runs_once(api, client, settings, arq_pool, admin_engine):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    task_id = r.json()["id"]
    async with admin_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT id, workspace_id, user_id, job FROM outbox WHERE task_id = :t"),
                {"t": task_id},
            )
        ).one()
    pending = outbox.Pending(row.id, row.workspace_id, row.user_id, row.job)
    # Sent again while queued: Redis keeps one job (the job id is the outbox id).
    await outbox.send(arq_pool, settings.job_queue_name, [pending, pending])
    assert (await _queue(arq_pool, settings)).count(str(row.id).encode()) == 1
    worker = await run_jobs(settings)
    assert worker.jobs_complete == 1
    # Sent again after arq forgot the job: it runs, finds its task done, and does nothing.
    await arq_pool.delete(f"arq:result:{row.id}")
    await outbox.send(arq_pool, settings.job_queue_name, [pending])
    worker = await run_jobs(settings)
    assert worker.jobs_complete == 1
    task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert task["state"] == "succeeded" and task["attempts"] == 1
    findings = await api.all(owner, slug, "findings")
    assert len(findings) == 5


async def test_sweeper_redelivers_a_job_redis_lost(
    api, client, settings, maintenance_db, arq_pool, admin_engine
):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    task_id = r.json()["id"]
    async with admin_engine.begin() as conn:
        outbox_id = (
            await conn.execute(
                text(
                    "UPDATE outbox SET sent_at = now() - interval '1 hour' WHERE task_id = :t "
                    "RETURNING id"
                ),
                {"t": task_id},
            )
        ).scalar_one()
    # Redis lost it (a restart without persistence).
    await arq_pool.zrem(settings.job_queue_name, str(outbox_id))
    await arq_pool.delete(f"arq:job:{outbox_id}")
    sent = await cron.sweep_outbox(
        {"settings": settings, "maintenance_db": maintenance_db, "redis": arq_pool}
    )
    assert sent >= 1
    await run_jobs(settings)
    task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert task["state"] == "succeeded"
    async with admin_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT send_count, done_at FROM outbox WHERE id = :o"), {"o": outbox_id}
            )
        ).one()
    assert row.send_count == 2 and row.done_at is not None
    # Done rows are never offered to the sweeper again.
    assert outbox_id not in {p.id for p in await outbox.pending(maintenance_db, 0)}


async def test_worker_startup_relays_leftovers(api, client, settings, arq_pool, admin_engine):
    """Jobs a process committed but never handed to Redis are sent by the worker as it starts
    (as the maintenance role: the API's runtime role sees no outbox across workspaces)."""
    import gc

    from workers.settings import shutdown, startup

    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    async with admin_engine.begin() as conn:
        outbox_id = (
            await conn.execute(
                text("UPDATE outbox SET sent_at = NULL WHERE task_id = :t RETURNING id"),
                {"t": r.json()["id"]},
            )
        ).scalar_one()
    await arq_pool.zrem(settings.job_queue_name, str(outbox_id))
    await arq_pool.delete(f"arq:job:{outbox_id}")
    ctx = {"settings": settings, "redis": arq_pool}
    await startup(ctx)
    try:
        assert str(outbox_id).encode() in await _queue(arq_pool, settings)
    finally:
        await shutdown(ctx)
        gc.unfreeze()
    await run_jobs(settings)
    task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert task["state"] == "succeeded"
