"""arq's worker, made to outlive its dependencies.

Invariant: `warden worker` stops only when told to (SIGINT/SIGTERM) or, in burst mode, when the
queue is empty. It starts while Redis or the database is down and waits for them; when Redis
goes away it keeps its running jobs going, stops picking new ones, and reconnects with backoff
(one log line per attempt, one when Redis is back); failures of the database are the jobs'
business (each job retries what is worth retrying). A job's "in progress" mark in Redis lives
one task lease and is renewed beside the lease while the job runs, so the job of a worker that
died is picked up again by another after a lease, not after the longest time limit of any job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import ArqRedis, create_pool, log_redis_info
from arq.constants import in_progress_key_prefix
from arq.worker import Worker, poll

from app.unavailable import retry_while_unavailable, unavailable

log = logging.getLogger("warden.worker")


class ResilientWorker(Worker):
    def __init__(
        self,
        *args: Any,
        lease_seconds: float,
        heartbeat_seconds: float,
        reconnect_max_seconds: float,
        on_redis_back: Callable[[dict[str, Any]], Awaitable[object]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_redis_back = on_redis_back
        self._background: set[asyncio.Task[object]] = set()
        self.in_progress_timeout_s = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self._heartbeat: asyncio.Task[None] | None = None

    async def _connect(self) -> ArqRedis:
        return await create_pool(
            self.redis_settings,
            job_deserializer=self.job_deserializer,
            job_serializer=self.job_serializer,
            default_queue_name=self.queue_name,
            expires_extra_ms=self.expires_extra_ms,
        )

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await retry_while_unavailable(
                self._connect, what="worker start", log=log, max_delay=self.reconnect_max_seconds
            )
        log.info(
            "starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions)
        )
        with contextlib.suppress(Exception):
            await log_redis_info(self.pool, log.info)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        self._heartbeat = asyncio.create_task(self._renew_in_progress())
        try:
            await self._poll_forever()
        finally:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat

    async def _poll_forever(self) -> None:
        down_since: float | None = None
        delay = 0.5
        async for _ in poll(self.poll_delay_s):
            try:
                await self._poll_iteration()
            except Exception as exc:
                lost = unavailable(exc)
                if lost is None:
                    raise
                if down_since is None:
                    down_since = time.monotonic()
                wait = random.uniform(delay / 2, delay)  # noqa: S311 - jitter
                log.warning(
                    "redis unavailable (%s): running jobs go on, new ones wait; retry in %.1fs",
                    lost.reason,
                    wait,
                    extra={"dependency": lost.dependency, "reason": lost.reason},
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.reconnect_max_seconds)
                continue
            if down_since is not None:
                log.info("redis is back after %.1fs", time.monotonic() - down_since)
                down_since, delay = None, 0.5
                self._after_outage()
            if self.burst and await self._burst_done():
                return

    def _after_outage(self) -> None:
        """Redis is back (perhaps empty, after a restart): let `on_redis_back` re-send what it
        may have lost, beside the polling."""
        if self.on_redis_back is None:
            return
        task = asyncio.create_task(self._run_safely(self.on_redis_back(self.ctx)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _run_safely(work: Awaitable[object]) -> object:
        try:
            return await work
        except Exception as exc:  # noqa: BLE001 - the crons do the same work again later
            lost = unavailable(exc)
            log.warning("work after the outage failed (%s)", lost.reason if lost else exc)
            return None

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            await asyncio.gather(*self.tasks.values())
            return True
        if await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def _renew_in_progress(self) -> None:
        """Keep the "in progress" mark of every running job (crons included) one lease ahead."""
        ttl = int(self.in_progress_timeout_s * 1000)
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            running = [job_id for job_id, task in self.tasks.items() if not task.done()]
            if not running:
                continue
            try:
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in running:
                        pipe.pexpire(in_progress_key_prefix + job_id, ttl)
                    await pipe.execute()
            except Exception as exc:  # noqa: BLE001 - Redis may be down; the poll loop says so
                if unavailable(exc) is None:
                    log.exception("could not renew the jobs' in-progress marks")

    async def close(self) -> None:
        """arq's close, going on without Redis when it is gone (the process is stopping): the
        database pool is still disposed by `on_shutdown`."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        try:
            await self.pool.delete(self.health_check_key)
        except Exception as exc:
            lost = unavailable(exc)
            if lost is None:
                raise
            log.warning("worker stopping without Redis (%s)", lost.reason)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        with contextlib.suppress(Exception):
            await self.pool.close(close_connection_pool=True)
        self._pool = None
