"""Fixtures: one real PostgreSQL database (migrated with Alembic, unique name, dropped at the
end), real Redis, and the app connected as the same non-owner runtime role as in production."""

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
from app.main import create_app
from tests.helpers import Api
from tests.servers import Servers, test_servers, unique


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with test_servers() as found:
        yield found


@pytest.fixture(scope="session")
async def database(servers: Servers) -> AsyncIterator[dict[str, str]]:
    """A fresh database with its own runtime and definer roles, migrated to head."""
    name = unique("warden_test")
    runtime, definer = unique("warden_app"), unique("warden_definer")
    platform = unique("warden_platform")
    password = secrets.token_hex(12)
    server = make_url(servers.postgres_admin_url)
    root = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with root.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin_url = server.set(database=name).render_as_string(hide_password=False)
    runtime_url = server.set(database=name, username=runtime, password=password).render_as_string(
        hide_password=False
    )
    try:
        await migrate(admin_url, runtime_url, definer, platform)
        yield {
            "admin_url": admin_url,
            "runtime_url": runtime_url,
            "runtime_role": runtime,
            "definer_role": definer,
            "platform_role": platform,
            "name": name,
        }
    finally:
        async with root.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (runtime, definer, platform):
                await conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        await root.dispose()


def make_settings(database: dict[str, str], servers: Servers, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database["runtime_url"],
        "admin_database_url": database["admin_url"],
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
