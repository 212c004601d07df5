"""Alembic runs as the owner (admin) role; the URL comes from the config attributes or settings."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from app.db import models  # noqa: F401  (registers every table)
from app.db.base import Base
from app.db.citus import prepare_migration

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    from app.config import get_settings

    admin = get_settings().admin_database_url
    if not admin:
        raise RuntimeError("WARDEN_ADMIN_DATABASE_URL is not set")
    return admin


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        prepare_migration(connection)
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_main())
