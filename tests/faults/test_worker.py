"""The worker outlives its dependencies and tasks outlive their worker: real `warden worker`
processes, a Redis (and a PostgreSQL) of the test's own stopped and started under them, a
worker killed with SIGKILL in the middle of an import."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from benchmarks.scenarios.ingest import records
from tests.conftest import make_settings
from tests.helpers import Api, report_bytes, sample_report, serve, upload_scan
from tests.live import Proc, env_for, until

pytestmark = pytest.mark.faults

# Short leases, so a takeover takes seconds here (30 s by default).
LEASE = {"WARDEN_TASK_LEASE_SECONDS": "3", "WARDEN_TASK_HEARTBEAT_SECONDS": "1"}


def _worker(settings: Any, tmp: Path, name: str = "worker", **extra: str) -> tuple[Proc, Any]:
    """A `warden worker` process, and the settings of an app that feeds its queue."""
    env = env_for(settings, **LEASE, **extra)
    proc = Proc(name, ["worker"], env, tmp)
    return proc, settings.model_copy(update={"job_queue_name": env["WARDEN_JOB_QUEUE_NAME"]})


async def _polling(settings: Any) -> None:
    """Until the worker polls its queue (arq records its health at the first poll)."""
    redis = Redis.from_url(settings.redis_url)

    async def up() -> bool:
        return bool(await redis.exists(f"{settings.job_queue_name}:health-check"))

    try:
        await until(up, 60, "the worker to poll")
    finally:
        await redis.aclose()


def _clean(proc: Proc) -> str:
    log = proc.log.read_text()
    assert "Traceback" not in log, log[-4000:]
    return log


async def _task(client, owner, location: str) -> dict[str, Any]:
    return (await client.get(location, headers=owner.headers)).json()


async def _finished(client, owner, location: str, seconds: float) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        task = await _task(client, owner, location)
        return task if task["state"] not in ("pending", "running") else None

    return await until(done, seconds, "the task to finish")


async def _owner(api: Api) -> tuple[Any, str, dict[str, Any]]:
    owner = await api.user("faults")
    slug = await api.workspace(owner)
    return owner, slug, await api.provider(owner, slug)


async def test_redis_down_during_an_upload(database, servers, throwaway_redis, tmp_path):
    """The upload is accepted while Redis is down; the same worker process, which stayed up,
    runs the import once Redis is back (empty, as after a restart without persistence)."""
    base = make_settings(database, servers, redis_url=throwaway_redis.url)
    worker, settings = _worker(base, tmp_path)
    try:
        async with serve(settings) as (_, client):
            api = Api(client)
            owner, slug, provider = await _owner(api)
            await _polling(settings)
            throwaway_redis.stop()
            started = time.monotonic()
            report = report_bytes(sample_report("aws", provider["uid"]))
            r = await upload_scan(client, owner, slug, provider["id"], report)
            assert r.status_code == 202, r.text
            assert time.monotonic() - started < 5
            await asyncio.sleep(3)
            assert worker.proc.poll() is None, worker.tail()  # waiting, not gone
            throwaway_redis.start()
            back = time.monotonic()
            task = await _finished(client, owner, r.headers["content-location"], 60)
            print(f"\nimport done {time.monotonic() - back:.1f}s after Redis was back")
            assert task["state"] == "succeeded", task
            assert task["result"]["imported"] == 5
            assert worker.proc.poll() is None  # the same process did it
        log = _clean(worker)
        assert "redis unavailable" in log and "redis is back" in log
    except BaseException:
        print(worker.tail())
        raise
    finally:
        worker.stop(signal.SIGTERM)


async def test_the_worker_outlives_database_and_redis_outages(
    fault_pg, fault_database, servers, throwaway_redis, tmp_path
):
    """Started with both down it waits; it runs jobs once they are up; a database restart and
    a Redis restart later it still runs them, in the same process; SIGTERM stops it."""
    await asyncio.to_thread(fault_pg.stop, "fast")
    throwaway_redis.stop()
    base = make_settings(fault_database, servers, redis_url=throwaway_redis.url)
    worker, settings = _worker(base, tmp_path)
    try:
        await asyncio.sleep(3)
        assert worker.proc.poll() is None, worker.tail()
        throwaway_redis.start()
        await asyncio.sleep(1.5)
        assert worker.proc.poll() is None, worker.tail()
        await asyncio.to_thread(fault_pg.start)
        async with serve(settings) as (_, client):
            api = Api(client)
            owner, slug, provider = await _owner(api)
            report = report_bytes(sample_report("aws", provider["uid"]))

            async def import_once() -> None:
                r = await upload_scan(client, owner, slug, provider["id"], report)
                assert r.status_code == 202, r.text
                task = await _finished(client, owner, r.headers["content-location"], 60)
                assert task["state"] == "succeeded", task

            await import_once()
            await asyncio.to_thread(fault_pg.stop, "fast")
            await asyncio.sleep(6)  # the audit seal (every 5 s) meets the outage
            await asyncio.to_thread(fault_pg.start)
            await import_once()
            throwaway_redis.stop()
            await asyncio.sleep(2)
            throwaway_redis.start()
            await import_once()
        assert worker.proc.poll() is None
        assert worker.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        log = _clean(worker)
        assert "worker startup: database unavailable" in log
        assert "worker start: redis unavailable" in log
        assert "cron seal_audit skipped: database unavailable" in log
    except BaseException:
        print(worker.tail())
        raise
    finally:
        worker.stop(signal.SIGKILL)


async def test_a_worker_killed_mid_import_is_taken_over(database, servers, admin_engine, tmp_path):
    """SIGKILL the worker holding an import's lease: the other worker takes the task over
    after the lease, imports it in a new transaction, and the findings are there exactly
    once."""
    count = 30_000
    base = make_settings(database, servers, upload_chunk_bytes=1 << 20)
    extra = {"WARDEN_IMPORT_BATCH_SIZE": "200"}
    first, settings = _worker(base, tmp_path, "worker-1", **extra)
    env = env_for(settings, **LEASE, **extra)
    env["WARDEN_JOB_QUEUE_NAME"] = settings.job_queue_name
    second = Proc("worker-2", ["worker"], env, tmp_path)
    workers = {first.proc.pid: first, second.proc.pid: second}
    try:
        async with serve(settings) as (_, client):
            api = Api(client)
            owner, slug, provider = await _owner(api)
            report = report_bytes(list(records(count, provider["uid"])))
            r = await upload_scan(client, owner, slug, provider["id"], report)
            assert r.status_code == 202, r.text
            task_id = r.json()["id"]

            async def holder() -> tuple[int, str] | None:
                async with admin_engine.connect() as conn:
                    row = (
                        await conn.execute(
                            text("SELECT leased_by, progress FROM task WHERE id = :t"),
                            {"t": task_id},
                        )
                    ).one()
                if row.leased_by and row.progress > 0:
                    return int(row.leased_by.rsplit(":", 1)[1]), row.leased_by
                return None

            pid, name = await until(holder, 60, "the import to be under way")
            victim, survivor = workers[pid], next(w for p, w in workers.items() if p != pid)
            victim.stop(signal.SIGKILL)
            killed = time.monotonic()

            async def taken_over() -> bool:
                now = await holder()
                return now is not None and now[1] != name

            await until(taken_over, 60, "another worker to take the task over")
            takeover = time.monotonic() - killed
            task = await _finished(client, owner, r.headers["content-location"], 120)
            done = time.monotonic() - killed
            print(f"\ntaken over {takeover:.1f}s after SIGKILL (lease 3 s), done after {done:.1f}s")
            assert task["state"] == "succeeded", task
            assert task["attempts"] == 2
            assert task["result"]["imported"] == count
            assert takeover < 15
        async with admin_engine.connect() as conn:
            stored = (
                await conn.execute(
                    text(
                        "SELECT count(*), count(DISTINCT uid) FROM finding f "
                        "JOIN scan s ON s.workspace_id = f.workspace_id AND s.id = f.scan_id "
                        "WHERE s.task_id = :t"
                    ),
                    {"t": task_id},
                )
            ).one()
        assert tuple(stored) == (count, count)
        assert survivor.proc.poll() is None
        log = _clean(survivor)
        assert re.search(r"taking over task \S+ from \S+:" + str(pid), log), log[-2000:]
    except BaseException:
        print(first.tail(), second.tail(), sep="\n")
        raise
    finally:
        for w in workers.values():
            w.stop(signal.SIGTERM)
