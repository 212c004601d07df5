"""A first-come, first-served connection pool for the async engine.

SQLAlchemy's async pool waits on an `asyncio.Queue`, which is not fair under contention: a
connection put back wakes the oldest waiter, but a request arriving in the meantime takes it
first (`get_nowait`), and the woken waiter goes back to the end of the line. With more
concurrent requests than connections, a few requests then wait many times longer than the
rest (`warden bench`, 200 clients on a 20-connection pool: p50 0.4 s, p99 8 s) and can hit the
pool timeout (a 500). Here a returned connection is handed straight to the oldest waiter, so
nobody overtakes anybody: waits are bounded by the queue ahead, not by luck.

A connection the pool does not keep (an overflow connection returned to a full pool) is closed
inside SQLAlchemy's async context: asyncpg's graceful close awaits the server, which SQLAlchemy
can only do from a greenlet, and the request transaction returns connections from plain async
code (closing there failed with `MissingGreenlet` and dropped the connection uncleanly).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from functools import cached_property
from typing import Any, Generic, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet
from sqlalchemy.util.queue import AsyncAdaptedQueue, Full

from app.metrics import POOL_WAIT

T = TypeVar("T")


class HandoffQueue(Generic[T]):
    """FIFO queue with direct hand-off to waiters (the `asyncio.Queue` subset the pool uses).

    Invariant: items are stored only while nobody waits, so `get_nowait` can never take an
    item a waiter was promised.
    """

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled (timed-out) waiter is skipped
                waiter.set_result(item)
                return
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> T:
        if self._items:
            return self._items.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        started = time.perf_counter()  # only a caller that waits pays for measuring it
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed an item just as we were cancelled (pool timeout): pass it on.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
            raise
        finally:
            POOL_WAIT.observe(time.perf_counter() - started)

    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())


class _FairQueue(AsyncAdaptedQueue[Any]):
    @cached_property
    def _queue(self) -> HandoffQueue[Any]:  # type: ignore[override]
        return HandoffQueue(maxsize=self.maxsize)


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` (same sizes, overflow, timeout) whose waiters are served in
    arrival order, and whose surplus connections are closed in the async context."""

    _queue_class = _FairQueue

    def waiting(self) -> int:
        """Callers waiting for a connection now (read when metrics are scraped)."""
        return self._pool._queue.waiting()  # type: ignore[attr-defined,no-any-return]

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            self._pool.put(record, False)
        except Full:
            try:
                _close(record)
            finally:
                self._dec_overflow()


# Closes in flight (a task is only weakly referenced by the loop).
_closing: set[asyncio.Task[Any]] = set()


def _close(record: ConnectionPoolEntry) -> None:
    """Close a connection the pool does not keep: at once inside a greenlet, else as a task of
    its own (the caller is plain async code that cannot wait for it). One the server already
    closed is only released (a graceful close would fail and log an error)."""
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        record.invalidate()  # no I/O: the socket is gone
        return
    if in_greenlet():
        record.close()
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop: nothing can be awaited, the pool logs why it failed
        record.close()
        return
    task = loop.create_task(greenlet_spawn(record.close))
    _closing.add(task)
    task.add_done_callback(_closing.discard)
