"""The engine's pool serves waiting requests in arrival order (app/db/pool.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import event

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
    pids: set[int] = set()
    async with app.router.lifespan_context(app):
        engine = app.state.db.engine
        event.listen(
            engine.sync_engine,
            "connect",
            lambda conn, record: pids.add(conn.driver_connection.get_server_pid()),
        )
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
        await asyncio.sleep(0.2)  # the surplus closes run as their own tasks
        assert engine.pool.checkedout() == 0 and engine.pool.overflow() <= 0
        assert len(pids) > 2  # the load did open surplus connections
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            still_open = await driver.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
            )
        assert still_open <= 2  # only the pool's own connections are left
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [f"{r.name}: {r.getMessage()}" for r in errors]
