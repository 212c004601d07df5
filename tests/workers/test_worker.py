"""Retries with backoff, soft and hard time limits, and the worker's registry."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.jobs import JOBS
from app.unavailable import retryable
from tests.conftest import make_settings
from tests.helpers import report_bytes, run_jobs, sample_report, upload_scan
from tests.workers.conftest import enqueue_spec, functions_with, kind_for_test
from workers.context import job
from workers.retry import backoff
from workers.settings import WorkerSettings

attempts: dict[str, int] = {}


@job(kind_for_test("flaky"))
async def flaky(jc, ctx) -> dict[str, Any]:
    attempts["flaky"] = attempts.get("flaky", 0) + 1
    if attempts["flaky"] < 3:
        raise ConnectionResetError("database connection lost")
    return {"tries": attempts["flaky"]}


@job(kind_for_test("always_down"))
async def always_down(jc, ctx) -> dict[str, Any]:
    raise RedisConnectionError("redis is down")


@job(kind_for_test("bug"))
async def bug(jc, ctx) -> dict[str, Any]:
    raise KeyError("a bug")


@job(kind_for_test("sleepy"))
async def sleepy(jc, ctx) -> dict[str, Any]:
    await asyncio.sleep(30)
    return {}


async def _owner(api):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    owner.id = (await api.me(owner))["id"]
    return owner, slug, await api.workspace_id(owner, slug)


async def _task(admin_engine, task_id) -> Any:
    async with admin_engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT state, attempts, error, result, progress, progress_detail "
                    "FROM task WHERE id = :t"
                ),
                {"t": task_id},
            )
        ).one()


def _fast(database, servers, **extra):
    return make_settings(
        database, servers, job_retry_base_seconds=0.05, job_retry_max_seconds=0.2, **extra
    )


async def test_transient_errors_are_retried_with_backoff(
    api, database, servers, db, arq_pool, admin_engine
):
    settings = _fast(database, servers)
    _, _, ws = owner_ws = await _owner(api)
    attempts.clear()
    task_id = await enqueue_spec(db, arq_pool, settings, flaky, ws, owner_ws[0].id)
    worker = await run_jobs(settings, functions=functions_with(flaky, settings=settings))
    assert worker.jobs_retried == 2 and worker.jobs_complete == 1
    task = await _task(admin_engine, task_id)
    assert (task.state, task.attempts, task.result) == ("succeeded", 3, {"tries": 3})
    assert task.error is None


async def test_retries_give_up_after_max_tries(api, database, servers, db, arq_pool, admin_engine):
    settings = _fast(database, servers, job_max_tries=3)
    owner, _, ws = await _owner(api)
    task_id = await enqueue_spec(db, arq_pool, settings, always_down, ws, owner.id)
    await run_jobs(settings, functions=functions_with(always_down, settings=settings))
    task = await _task(admin_engine, task_id)
    assert (task.state, task.attempts) == ("failed", 3), task
    assert task.error == "Gave up after 3 attempts: ConnectionError"


async def test_a_bug_fails_at_once_without_details(api, settings, db, arq_pool, admin_engine):
    owner, _, ws = await _owner(api)
    task_id = await enqueue_spec(db, arq_pool, settings, bug, ws, owner.id)
    worker = await run_jobs(settings, functions=functions_with(bug, settings=settings))
    assert worker.jobs_retried == 0
    task = await _task(admin_engine, task_id)
    assert task.state == "failed" and task.attempts == 1
    assert task.error == "Unexpected error (KeyError); see the worker log"


async def test_hard_time_limit(api, database, servers, db, arq_pool, admin_engine):
    settings = make_settings(database, servers, job_hard_time_limit=0.3)
    owner, _, ws = await _owner(api)
    task_id = await enqueue_spec(db, arq_pool, settings, sleepy, ws, owner.id)
    started = asyncio.get_running_loop().time()
    await run_jobs(settings, functions=functions_with(sleepy, settings=settings))
    assert asyncio.get_running_loop().time() - started < 10
    task = await _task(admin_engine, task_id)
    assert task.state == "failed" and task.error == "Hard time limit of 0.3s exceeded"


async def test_soft_time_limit_records_progress_and_writes_nothing(
    api, database, servers, admin_engine
):
    settings = make_settings(database, servers, job_soft_time_limit=0.000001)
    from tests.helpers import serve

    async with serve(settings) as (_, client):
        owner = await type(api)(client).login((await api.user("owner")).email)
        slug = await type(api)(client).workspace(owner)
        provider = await type(api)(client).provider(owner, slug)
        records = sample_report("aws", provider["uid"]) * 1
        r = await upload_scan(client, owner, slug, provider["id"], report_bytes(records))
        await run_jobs(settings)
        task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert task["state"] == "failed"
    assert task["error"] == "Soft time limit of 1e-06s exceeded"
    assert task["progress"] > 0 and task["progress_detail"]["bytes_read"] > 0
    async with admin_engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM finding WHERE scan_id = :s"), {"s": task["resource_id"]}
            )
        ).scalar_one()
    assert count == 0


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        values = {backoff(attempt, 2.0, 60.0) for _ in range(50)}
        assert all(ceiling / 2 <= v <= ceiling for v in values), (attempt, values)
        assert len(values) > 1  # jittered


def _pg_error(cls: type[Exception]) -> DBAPIError:
    orig = cls("boom")
    return DBAPIError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "exc,transient",
    [
        (ConnectionRefusedError(), True),
        (RedisConnectionError(), True),
        (TimeoutError(), True),
        (_pg_error(asyncpg.exceptions.DeadlockDetectedError), True),
        (_pg_error(asyncpg.exceptions.SerializationError), True),
        (_pg_error(asyncpg.exceptions.AdminShutdownError), True),
        (_pg_error(asyncpg.exceptions.ConnectionDoesNotExistError), True),
        (IntegrityError("INSERT", {}, asyncpg.exceptions.UniqueViolationError("dup")), False),
        (_pg_error(asyncpg.exceptions.InsufficientPrivilegeError), False),
        (KeyError("x"), False),
        (ValueError("x"), False),
    ],
)
def test_transient_classification(exc, transient):
    assert retryable(exc) is transient


def test_every_job_name_has_a_worker_function():
    """The names `app` enqueues (app.jobs) are exactly the worker's functions."""
    assert {f.name for f in WorkerSettings.functions} == set(JOBS)


async def test_worker_refuses_an_unsafe_role(database, servers):
    from workers.settings import UnsafeDatabaseRole, startup

    settings = make_settings(database, servers)
    settings = settings.model_copy(update={"database_url": database["admin_url"]})
    with pytest.raises(UnsafeDatabaseRole, match="superuser"):
        await startup({"settings": settings})


async def test_import_runs_in_a_real_worker_with_other_jobs(api, client, settings):
    """Several imports queued at once: the worker runs them concurrently, each in its own
    workspace context."""
    uploads = []
    for _ in range(3):
        owner = await api.user("owner")
        slug = await api.workspace(owner)
        provider = await api.provider(owner, slug)
        r = await upload_scan(
            client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
        )
        uploads.append((owner, slug, r))
    worker = await run_jobs(settings)
    assert worker.jobs_complete == 3
    for owner, slug, r in uploads:
        task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
        assert task["state"] == "succeeded"
        assert len(await api.all(owner, slug, "findings")) == 5
