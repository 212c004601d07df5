"""Where the tests' PostgreSQL and Redis come from: `TEST_DATABASE_URL` / `TEST_REDIS_URL` when
set (CI points them at the machine's services), else embedded servers in a temporary folder.
`TEST_CITUS_URL` (a coordinator's database with its workers registered, as `make test-citus`
starts it) puts the test database on that Citus cluster instead."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


def asyncpg_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Servers:
    postgres_admin_url: str  # a superuser on the server, database "postgres"
    redis_url: str
    citus_url: str | None = None  # a superuser on a Citus coordinator, a database of the cluster


@contextmanager
def test_servers() -> Iterator[Servers]:
    db_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="warden-test-") as tmp:
        pg = rd = None
        try:
            if not db_url:
                from app.embedded import EmbeddedPostgres

                pg = EmbeddedPostgres(Path(tmp) / "pg")
                db_url = pg.start()
            if not redis_url:
                from app.embedded import EmbeddedRedis

                rd = EmbeddedRedis(Path(tmp) / "redis")
                redis_url = rd.start()
            yield Servers(asyncpg_url(db_url), redis_url, os.environ.get("TEST_CITUS_URL"))
        finally:
            if rd is not None:
                rd.stop()
            if pg is not None:
                pg.stop()


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"
