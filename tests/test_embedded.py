"""Embedded PostgreSQL / Redis: real servers, data and port survive a restart."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import redis

from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port


async def _pg(url: str | None, *statements: str) -> list[asyncpg.Record]:
    """Run statements on one connection; return the rows of the last one."""
    assert url is not None
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for sql in statements[:-1]:
            await conn.execute(sql)
        rows: list[asyncpg.Record] = await conn.fetch(statements[-1])
        return rows
    finally:
        await conn.close()


def test_free_port_is_bindable() -> None:
    assert 0 < free_port() < 65536


def test_postgres_data_and_port_survive_restart(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path) as pg:
        port = pg.port
        assert pg.url == f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
        create = "create table notes (id int primary key, body text)"
        insert = "insert into notes values (1, 'hello')"
        rows = asyncio.run(_pg(pg.url, create, insert, "select 1 as one"))
        assert rows[0]["one"] == 1
    pg.stop()  # idempotent
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()

    with EmbeddedPostgres(tmp_path) as pg2:
        assert pg2.port == port
        rows = asyncio.run(_pg(pg2.url, "select body from notes where id = 1"))
        assert rows[0]["body"] == "hello"
        encoding = asyncio.run(_pg(pg2.url, "show server_encoding"))
        assert encoding[0][0] == "UTF8"


def test_postgres_adopts_running_server_and_survives_stale_pid(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path)
    url = first.start()
    try:
        # A second handle (e.g. after the dev server crashed) reuses the live postmaster.
        second = EmbeddedPostgres(tmp_path)
        assert second.start() == url
    finally:
        first.stop()
    second.stop()

    # Postmaster died without cleaning up; its pid is gone, or recycled by another process.
    pid_file = tmp_path / "postgres" / "postmaster.pid"
    for stale_pid in (_dead_pid(), os.getpid()):
        pid_file.write_text(f"{stale_pid}\n{pid_file.parent}\n0\n{first.port}\n\n127.0.0.1\n")
        with EmbeddedPostgres(tmp_path) as pg:
            assert pg.port == first.port
            assert asyncio.run(_pg(pg.url, "select 1"))[0][0] == 1


def test_redis_data_and_port_survive_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as rd:
        port = rd.port
        assert rd.url == f"redis://127.0.0.1:{port}/0"
        client = _redis(rd.url)
        assert client.ping()
        client.set("greeting", "hello")
        client.close()
    rd.stop()  # idempotent

    with EmbeddedRedis(tmp_path) as rd2:
        assert rd2.port == port
        client = _redis(rd2.url)
        assert client.get("greeting") == b"hello"
        client.close()


def test_redis_replaces_orphan_on_same_dir(tmp_path: Path) -> None:
    orphan = EmbeddedRedis(tmp_path)
    orphan.start()
    client = _redis(orphan.url)
    client.set("k", "v")
    client.close()
    try:
        with EmbeddedRedis(tmp_path) as rd:
            assert orphan._proc is not None and orphan._proc.poll() is not None
            client = _redis(rd.url)
            assert client.get("k") == b"v"
            client.close()
    finally:
        orphan.stop()


def _redis(url: str | None) -> redis.Redis:
    assert url is not None
    return redis.Redis.from_url(url)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
