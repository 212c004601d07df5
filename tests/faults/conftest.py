"""Fault tests: a PostgreSQL (and Redis) of the test's own, migrated like production, that the
test stops, restarts and kills, with real `warden serve` and `warden worker` processes."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrate import migrate
from tests.faults.servers import ThrowawayPostgres
from tests.servers import unique
from tests.workers.conftest import ThrowawayRedis


@pytest.fixture(scope="module")
def fault_pg() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def throwaway_redis(tmp_path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def fault_database(fault_pg: ThrowawayPostgres) -> AsyncIterator[dict[str, Any]]:
    """A migrated database on the throwaway server, in the shape of the `database` fixture."""
    name = unique("warden_fault")
    root = create_async_engine(fault_pg.url, isolation_level="AUTOCOMMIT")
    async with root.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await root.dispose()
    base = f"127.0.0.1:{fault_pg.port}/{name}"
    runtime, password = unique("warden_app"), secrets.token_hex(12)
    maintenance = unique("warden_maintenance")
    values = {
        "admin_url": f"postgresql+asyncpg://postgres@{base}",
        "runtime_url": f"postgresql+asyncpg://{runtime}:{password}@{base}",
        "runtime_role": runtime,
        "maintenance_url": f"postgresql+asyncpg://{maintenance}:{secrets.token_hex(12)}@{base}",
        "maintenance_role": maintenance,
        "definer_role": unique("warden_definer"),
        "platform_role": unique("warden_platform"),
        "name": name,
    }
    await migrate(
        values["admin_url"],
        values["runtime_url"],
        values["definer_role"],
        values["platform_role"],
        maintenance_url=values["maintenance_url"],
    )
    yield values
