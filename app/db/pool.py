"""A first-come, first-served connection pool for the async engine.

SQLAlchemy's async pool waits on an `asyncio.Queue`, which is not fair under contention: a
connection put back wakes the oldest waiter, but a request arriving in the meantime takes it
first (`get_nowait`), and the woken waiter goes back to the end of the line. With more
concurrent requests than connections, a few requests then wait many times longer than the
rest (`warden bench`, 200 clients on a 20-connection pool: p50 0.4 s, p99 8 s) and can hit the
pool timeout (a 500). Here a returned connection is handed straight to the oldest waiter, so
nobody overtakes anybody: waits are bounded by the queue ahead, not by luck.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from functools import cached_property
from typing import Any, Generic, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.queue import AsyncAdaptedQueue

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
    arrival order."""

    _queue_class = _FairQueue

    def waiting(self) -> int:
        """Callers waiting for a connection now (read when metrics are scraped)."""
        return self._pool._queue.waiting()  # type: ignore[attr-defined,no-any-return]
