"""The engine's pool serves waiting requests in arrival order (app/db/pool.py)."""

from __future__ import annotations

import asyncio

import pytest

from app.db.pool import FairAsyncQueuePool, HandoffQueue
from app.db.session import make_engine
from tests.conftest import make_settings


async def test_a_returned_item_goes_to_the_oldest_waiter_not_a_newcomer():
    queue: HandoffQueue[str] = HandoffQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("a")
    # A newcomer arriving before the woken waiter runs finds nothing to take.
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait("b")
    assert await first == "a" and await second == "b"
    assert queue.empty()


async def test_an_item_handed_to_a_cancelled_waiter_is_passed_on():
    queue: HandoffQueue[str] = HandoffQueue()
    timed_out = asyncio.create_task(queue.get())
    patient = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("conn")  # handed to `timed_out` ...
    timed_out.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await timed_out
    assert await patient == "conn"


async def test_cancelled_waiters_are_skipped_and_full_is_enforced():
    queue: HandoffQueue[int] = HandoffQueue(maxsize=1)
    gone = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    queue.put_nowait(1)
    assert queue.full() and queue.qsize() == 1
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(2)
    assert await queue.get() == 1


def test_the_runtime_engine_uses_the_fair_pool(database, servers):
    engine = make_engine(database["runtime_url"], make_settings(database, servers))
    assert isinstance(engine.pool, FairAsyncQueuePool)
