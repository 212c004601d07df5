"""Task leases: a task whose delivery died is taken over (once, in a new transaction, counted,
within the attempt limit); a live lease keeps other deliveries out; a delivery that lost its
lease commits nothing; the heartbeat renews the lease and arq's in-progress mark; a stopped job
lets go of its task; the sweep re-delivers a job Redis lost."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.jobs import IMPORT_SCAN
from app.services import outbox
from tests.conftest import make_settings
from tests.helpers import report_bytes, run_jobs, sample_report, upload_scan
from tests.workers.conftest import enqueue_spec, functions_with, kind_for_test
from workers import cron
from workers.context import job
from workers.settings import create_worker

seen: dict[str, Any] = {}


async def _upload(api, client) -> tuple[Any, str, dict[str, Any]]:
    owner = await api.user("lease")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    assert r.status_code == 202, r.text
    return owner, slug, r.json()


async def _set_task(admin_engine, task_id, sql: str, **params) -> None:
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"UPDATE task SET {sql} WHERE id = :t"), {"t": task_id, **params})


async def _task(admin_engine, task_id) -> Any:
    async with admin_engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    # (joined on the workspace too: the tables are distributed by it on Citus)
                    "SELECT t.state, t.attempts, t.error, t.result, t.lease_id, "
                    "t.lease_expires_at, t.leased_by, o.done_at FROM task t "
                    "LEFT JOIN outbox o ON o.workspace_id = t.workspace_id AND o.task_id = t.id "
                    "WHERE t.id = :t"
                ),
                {"t": task_id},
            )
        ).one()


async def _findings(admin_engine, task_id) -> int:
    async with admin_engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT count(*) FROM finding f JOIN scan s ON s.workspace_id = f.workspace_id "
                    "AND s.id = f.scan_id WHERE s.task_id = :t"
                ),
                {"t": task_id},
            )
        ).scalar_one()


DEAD = (
    f"state = 'running', attempts = :attempts, lease_id = '{uuid.uuid4()}', "
    "lease_expires_at = now() - interval '1 second', leased_by = 'gone:1'"
)


async def test_a_task_whose_worker_died_is_taken_over_once(
    api, client, settings, admin_engine, caplog
):
    await run_jobs(settings)  # the jobs earlier tests left queued are not counted below
    _, _, task = await _upload(api, client)
    await _set_task(admin_engine, task["id"], DEAD, attempts=1)
    caplog.set_level(logging.WARNING, "warden.jobs")
    worker = await run_jobs(settings)
    assert worker.jobs_complete == 1
    row = await _task(admin_engine, task["id"])
    assert (row.state, row.attempts) == ("succeeded", 2)
    assert row.lease_id is None and row.done_at is not None
    assert row.result["imported"] == 5
    assert await _findings(admin_engine, task["id"]) == 5
    assert any(
        "taking over task" in r.getMessage() and "gone:1" in r.getMessage() for r in caplog.records
    )


async def test_no_attempts_left_at_takeover_fails_the_task(api, client, settings, admin_engine):
    _, _, task = await _upload(api, client)
    await _set_task(admin_engine, task["id"], DEAD, attempts=settings.job_max_tries)
    await run_jobs(settings)
    row = await _task(admin_engine, task["id"])
    assert (row.state, row.attempts) == ("failed", settings.job_max_tries)
    assert row.error.startswith(f"Gave up after {settings.job_max_tries} attempts")
    assert row.done_at is not None
    async with admin_engine.connect() as conn:
        scan = (
            await conn.execute(
                text(
                    "SELECT s.state, count(u.scan_id) FROM scan s LEFT JOIN scan_upload u "
                    "ON u.workspace_id = s.workspace_id AND u.scan_id = s.id "
                    "WHERE s.task_id = :t GROUP BY s.workspace_id, s.id, s.state"
                ),
                {"t": task["id"]},
            )
        ).one()
    assert tuple(scan) == ("failed", 0)  # its upload freed, like any failed import


async def test_a_live_lease_keeps_another_delivery_waiting(api, client, settings, admin_engine):
    _, _, task = await _upload(api, client)
    await _set_task(
        admin_engine,
        task["id"],
        f"state = 'running', attempts = 1, lease_id = '{uuid.uuid4()}', "
        "lease_expires_at = now() + interval '1.5 seconds', leased_by = 'alive:1'",
    )
    started = time.monotonic()
    await run_jobs(settings)
    row = await _task(admin_engine, task["id"])
    assert (row.state, row.attempts) == ("succeeded", 2)
    assert time.monotonic() - started >= 1.5  # it waited for the lease, then took over


@job(kind_for_test("superseded"))
async def superseded(jc, ctx) -> dict[str, Any]:
    """Writes, then another delivery takes its task over before it commits."""
    await ctx.tx.execute(
        "INSERT INTO provider_group (workspace_id, id, name) VALUES ($1, $2, $3)",
        ctx.workspace_id,
        uuid.uuid4(),
        "written-by-a-superseded-delivery",
    )
    async with seen["admin"].begin() as conn:
        await conn.execute(
            text(
                f"UPDATE task SET lease_id = '{uuid.uuid4()}', leased_by = 'other:2' WHERE id = :t"
            ),
            {"t": jc.task_id},
        )
    return {"wrote": 1}


async def test_a_delivery_that_lost_its_lease_commits_nothing(
    api, settings, db, arq_pool, admin_engine
):
    owner = await api.user("lease")
    slug = await api.workspace(owner)
    ws = await api.workspace_id(owner, slug)
    user = (await api.me(owner))["id"]
    seen["admin"] = admin_engine
    task_id = await enqueue_spec(db, arq_pool, settings, superseded, ws, user)
    await run_jobs(settings, functions=functions_with(superseded, settings=settings))
    row = await _task(admin_engine, task_id)
    assert (row.state, row.leased_by, row.done_at) == ("running", "other:2", None)
    async with admin_engine.connect() as conn:
        written = (
            await conn.execute(
                text("SELECT count(*) FROM provider_group WHERE name LIKE 'written-by-%'")
            )
        ).scalar_one()
    assert written == 0
    await _finish(admin_engine, task_id)


@job(kind_for_test("long"))
async def long_job(jc, ctx) -> dict[str, Any]:
    """Runs until stopped; tells the test when it is under way, and when it was stopped."""
    seen["running"].set()
    try:
        await asyncio.sleep(30)
    finally:
        seen["stopped"].set()
    return {}


async def _running_job(settings, db, arq_pool, api) -> tuple[uuid.UUID, Any, asyncio.Task[Any]]:
    owner = await api.user("lease")
    slug = await api.workspace(owner)
    ws = await api.workspace_id(owner, slug)
    user = (await api.me(owner))["id"]
    seen["running"], seen["stopped"] = asyncio.Event(), asyncio.Event()
    task_id = await enqueue_spec(db, arq_pool, settings, long_job, ws, user)
    worker = create_worker(
        settings, functions=functions_with(long_job, settings=settings), handle_signals=False
    )
    running = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(seen["running"].wait(), 30)
    return task_id, worker, running


async def test_the_heartbeat_renews_the_lease_and_stops_a_job_that_lost_it(
    api, database, servers, db, arq_pool, admin_engine
):
    settings = make_settings(database, servers, task_lease_seconds=1, task_heartbeat_seconds=0.2)
    task_id, worker, running = await _running_job(settings, db, arq_pool, api)
    try:
        first = (await _task(admin_engine, task_id)).lease_expires_at
        await asyncio.sleep(0.6)
        row = await _task(admin_engine, task_id)
        assert row.lease_expires_at > first  # renewed
        key = f"arq:in-progress:{(await _outbox_id(admin_engine, task_id))}"
        await asyncio.sleep(1.2)  # longer than a lease: arq's mark is renewed too
        assert await arq_pool.pttl(key) > 0
        await _set_task(admin_engine, task_id, f"lease_id = '{uuid.uuid4()}'")
        taken = time.monotonic()
        await asyncio.wait_for(seen["stopped"].wait(), 10)
        assert time.monotonic() - taken < 2  # stopped at the next beat, not after 30 s
        assert (await _task(admin_engine, task_id)).state == "running"  # the taker's to finish
    finally:
        await worker.close()
        running.cancel()
        await _finish(admin_engine, task_id, arq_pool, settings.job_queue_name)


async def test_a_stopped_job_lets_go_of_its_task(api, settings, db, arq_pool, admin_engine):
    task_id, worker, running = await _running_job(settings, db, arq_pool, api)
    assert (await _task(admin_engine, task_id)).lease_id is not None
    await worker.close()  # stops the worker as SIGTERM does: the running job is cancelled
    running.cancel()
    row = await _task(admin_engine, task_id)
    assert (row.state, row.attempts, row.lease_id) == ("running", 1, None)
    await _finish(admin_engine, task_id, arq_pool, settings.job_queue_name)


async def test_the_sweep_redelivers_the_job_of_an_expired_lease_redis_lost(
    api, client, settings, db, maintenance_db, arq_pool, admin_engine
):
    _, _, task = await _upload(api, client)
    outbox_id = await _outbox_id(admin_engine, task["id"])
    await arq_pool.zrem(settings.job_queue_name, str(outbox_id))  # a Redis that lost it
    await arq_pool.delete(f"arq:job:{outbox_id}")
    await _set_task(admin_engine, task["id"], DEAD, attempts=1)
    assert outbox_id in {p.id for p in await outbox.expired_leases(maintenance_db)}
    ctx = {"maintenance_db": maintenance_db, "redis": arq_pool, "settings": settings}
    assert await cron.take_over_expired_tasks(ctx) >= 1
    await run_jobs(settings)
    row = await _task(admin_engine, task["id"])
    assert (row.state, row.attempts) == ("succeeded", 2)
    assert await _findings(admin_engine, task["id"]) == 5
    assert outbox_id not in {p.id for p in await outbox.expired_leases(maintenance_db)}


def test_arq_marks_a_job_in_progress_for_one_lease(settings):
    worker = create_worker(settings, handle_signals=False)
    assert worker.in_progress_timeout_s == settings.task_lease_seconds
    assert worker.functions[IMPORT_SCAN.name].keep_result_s == 0


async def _finish(admin_engine, task_id, arq_pool=None, queue: str = "") -> None:
    """Leave no running task (nor its queued test job) behind for the other tests."""
    if arq_pool is not None:
        job_id = str(await _outbox_id(admin_engine, task_id))
        await arq_pool.zrem(queue, job_id)
        await arq_pool.delete(f"arq:job:{job_id}", f"arq:in-progress:{job_id}")
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE task SET state = 'cancelled', finished_at = now() WHERE id = :t"),
            {"t": task_id},
        )
        await conn.execute(
            text("UPDATE outbox SET done_at = now() WHERE task_id = :t"), {"t": task_id}
        )


async def _outbox_id(admin_engine, task_id) -> uuid.UUID:
    async with admin_engine.connect() as conn:
        return (
            await conn.execute(text("SELECT id FROM outbox WHERE task_id = :t"), {"t": task_id})
        ).scalar_one()


async def test_the_cross_workspace_functions_are_narrow(admin_engine, runtime_engine, database):
    """PL/pgSQL definer functions with a search_path ending in pg_temp; the takeover sweep's
    only reads (ids and a job name); the maintenance role may call them but reaches no table,
    the runtime role may not call them."""
    async with admin_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT p.proname, p.prosecdef, l.lanname, p.proconfig, p.provolatile, "
                    "pg_get_function_result(p.oid) AS result FROM pg_proc p "
                    "JOIN pg_language l ON l.oid = p.prolang WHERE p.proname = ANY (:names)"
                ),
                {"names": ["warden_expired_task_leases", "warden_prune_idempotency_keys"]},
            )
        ).all()
    found = {r.proname: r for r in rows}
    assert set(found) == {"warden_expired_task_leases", "warden_prune_idempotency_keys"}
    for r in rows:
        assert r.prosecdef and r.lanname == "plpgsql"
        assert r.proconfig == ["search_path=pg_catalog, public, pg_temp"]
    sweep = found["warden_expired_task_leases"]
    assert sweep.provolatile in ("s", b"s")  # reads only (STABLE)
    assert sweep.result == "TABLE(id uuid, workspace_id uuid, user_id uuid, job text)"
    maintenance = create_async_engine(database["maintenance_url"])
    try:
        async with maintenance.connect() as conn:
            await conn.execute(text("SELECT * FROM warden_expired_task_leases(0, 10)"))
            with pytest.raises(DBAPIError, match="permission denied"):
                await conn.execute(text("SELECT count(*) FROM task"))
    finally:
        await maintenance.dispose()
    async with runtime_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(text("SELECT * FROM warden_expired_task_leases(0, 10)"))
