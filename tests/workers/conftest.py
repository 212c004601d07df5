"""Helpers for worker tests: run test-only jobs through the real wrapper and a real worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from app.db.session import Database
from app.jobs import JobKind
from app.services import outbox, tasks
from workers.context import JobSpec, with_rls_context
from workers.settings import JOBS, arq_function


@pytest.fixture(scope="session")
async def db(settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def arq_pool(settings) -> AsyncIterator[ArqRedis]:
    pool = ArqRedis(ConnectionPool.from_url(settings.redis_url))
    yield pool
    await pool.aclose(close_connection_pool=True)


def functions_with(*specs: JobSpec, settings: Any) -> list[Any]:
    """The worker's real job functions plus test-only ones, all wrapped the same way."""
    return [arq_function(spec, settings) for spec in (*JOBS, *specs)]


async def enqueue_spec(
    db: Database,
    arq: ArqRedis,
    settings: Any,
    spec: JobSpec,
    workspace_id: str,
    user_id: str,
    args: dict[str, Any] | None = None,
) -> uuid.UUID:
    """What a service does for a job: a task and an outbox row in one transaction (in the
    user's context), sent after commit. Returns the task id."""
    async with with_rls_context(db, workspace_id, user_id, spec.kind.permission) as ctx:
        task = await tasks.start(ctx, spec.kind, args=args)
        jobs = list(ctx.tx.info[outbox.PENDING_KEY])
    await outbox.deliver(db, arq, settings.job_queue_name, jobs)
    return task.id


def kind_for_test(name: str, permission: str = "task.read") -> JobKind:
    return JobKind(f"test.{name}", permission)


class ThrowawayRedis:
    """A redis-server of our own on a free port, to stop and start at will (never the
    machine's shared one)."""

    def __init__(self, tmp: Any) -> None:
        from app.embedded import free_port

        self.port = free_port()
        self.dir = tmp
        self.proc: Any = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import shutil
        import subprocess
        import time

        from app.embedded import _redis_call

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(  # noqa: S603
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _redis_call(self.port, b"PING").startswith(b"+PONG"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("throwaway redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def throwaway_redis(tmp_path) -> Any:
    server = ThrowawayRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
