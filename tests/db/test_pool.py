"""The engine's pool serves waiting requests in arrival order (app/db/pool.py)."""

from __future__ import annotations

import asyncio
import logging

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


async def test_surplus_connections_are_closed_cleanly_under_load(database, servers, caplog):
    """More concurrent requests than `pool_size`: the overflow connections a full pool does not
    keep are closed inside the async context (no `MissingGreenlet`/`QueueFull` error logged),
    and the server sees them go."""
    import httpx

    from app.main import create_app
    from tests.helpers import Api

    settings = make_settings(database, servers, db_pool_size=2, db_max_overflow=20)
    app = create_app(settings)
    caplog.set_level(logging.WARNING)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warden.test") as c:
            api = Api(c)
            owner = await api.user("pool")
            slug = await api.workspace(owner)
            await api.provider(owner, slug)
            for _ in range(3):
                answers = await asyncio.gather(
                    *(
                        c.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
                        for _ in range(24)
                    )
                )
                assert {r.status_code for r in answers} == {200}
        pool = app.state.db.engine.pool
        await asyncio.sleep(0.2)  # the surplus closes run as their own tasks
        assert pool.checkedout() == 0 and pool.overflow() <= 0
        async with app.state.db.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            open_now = await driver.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user "
                "AND datname = current_database()"
            )
        assert open_now <= 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [f"{r.name}: {r.getMessage()}" for r in errors]
