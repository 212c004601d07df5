"""Fixtures: one real PostgreSQL database (migrated with Alembic, unique name, dropped at the
end; on a Citus cluster when `TEST_CITUS_URL` is set), real Redis, and the app connected as the
same non-owner runtime role as in production."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings
from app.db.migrate import migrate
from app.db.session import Database
from app.main import create_app
from tests import cluster
from tests.helpers import Api
from tests.servers import Servers, test_servers, unique


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with test_servers() as found:
        yield found


@pytest.fixture(scope="session")
async def database(servers: Servers) -> AsyncIterator[dict[str, Any]]:
    """A fresh database with its own runtime, maintenance and definer roles, migrated to head:
    on the PostgreSQL server, or on every node of the Citus cluster when `TEST_CITUS_URL` is
    set."""
    name = unique("warden_test")
    runtime, definer = unique("warden_app"), unique("warden_definer")
    platform, maintenance = unique("warden_platform"), unique("warden_maintenance")
    roles = [runtime, maintenance, definer, platform]
    password = secrets.token_hex(12)
    if servers.citus_url:
        node_urls = await cluster.create_database(servers.citus_url, name)
    else:
        node_urls = [await _create_database(servers.postgres_admin_url, name)]
    admin_url = node_urls[0]
    runtime_url = (
        make_url(admin_url)
        .set(username=runtime, password=password)
        .render_as_string(hide_password=False)
    )
    maintenance_url = (
        make_url(admin_url)
        .set(username=maintenance, password=secrets.token_hex(12))
        .render_as_string(hide_password=False)
    )
    try:
        # Deleted workspaces go at once (the tamper tests set a grace period themselves).
        await migrate(
            admin_url,
            runtime_url,
            definer,
            platform,
            audit_purge_grace_hours=0,
            maintenance_url=maintenance_url,
        )
        yield {
            "admin_url": admin_url,
            "runtime_url": runtime_url,
            "runtime_role": runtime,
            "maintenance_url": maintenance_url,
            "maintenance_role": maintenance,
            "definer_role": definer,
            "platform_role": platform,
            "name": name,
            # The database's copy on every node, coordinator first (one URL without Citus).
            "node_urls": node_urls,
            "citus": bool(servers.citus_url),
        }
    finally:
        if servers.citus_url:
            await cluster.drop_database(servers.citus_url, name, roles)
        else:
            await _drop_database(servers.postgres_admin_url, name, roles)


async def _create_database(server_url: str, name: str) -> str:
    root = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with root.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        await root.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _drop_database(server_url: str, name: str, roles: list[str]) -> None:
    root = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with root.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in roles:
                await conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await root.dispose()


def make_settings(database: dict[str, str], servers: Servers, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database["runtime_url"],
        "admin_database_url": database["admin_url"],
        "maintenance_database_url": database["maintenance_url"],
        "definer_role": database["definer_role"],
        "platform_role": database["platform_role"],
        "redis_url": servers.redis_url,
        "jwt_secret": secrets.token_urlsafe(40),
        "signup_enabled": True,
        "argon2_time_cost": 1,
        "argon2_memory_cost": 8192,
        "db_pool_size": 5,
        # Each test database gets its own job queue: workers of concurrent test runs sharing
        # one Redis never take each other's jobs.
        "job_queue_name": f"warden:test:{database['name']}",
        # ...and its own Redis keys (throttling, audit anchors): nothing carries over.
        "redis_key_prefix": f"warden:test:{database['name']}",
        # Every test calls from one address: the denial budget per address is tested apart.
        "denials_per_address_per_minute": 1_000_000,
        "worker_poll_delay": 0.05,
        # Small upload chunks: every import streams across several chunks.
        "upload_chunk_bytes": 4096,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def settings(database: dict[str, str], servers: Servers) -> Settings:
    return make_settings(database, servers)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://warden.test") as c:
        yield c


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture(scope="session")
async def admin_engine(database: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database["admin_url"])
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def runtime_engine(database: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database["runtime_url"])
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def maintenance_engine(database: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database["maintenance_url"])
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def maintenance_db(settings: Settings) -> AsyncIterator[Database]:
    """The worker's cron pool: the maintenance role, the only one that runs upkeep."""
    from workers.settings import maintenance_database

    db = maintenance_database(settings)
    yield db
    await db.dispose()
