"""The one classification of "a dependency is unavailable", on errors the real drivers raise."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest
from asyncpg.exceptions._base import InternalClientError
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import create_async_engine

from app.embedded import free_port
from app.unavailable import DATABASE, REDIS, Unavailable, retryable, unavailable


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _error(coro) -> BaseException:
    try:
        await coro
    except BaseException as exc:  # noqa: BLE001 - the error is what is tested
        return exc
    raise AssertionError("no error")


async def test_a_refused_database_connection(database):
    url = make_url(database["runtime_url"]).set(port=free_port())
    exc = await _error(asyncpg.connect(_dsn(url.render_as_string(hide_password=False))))
    assert unavailable(exc) == Unavailable(DATABASE, "connection refused")
    engine = create_async_engine(url)
    try:
        exc = await _error(engine.raw_connection())
        assert unavailable(exc) == Unavailable(DATABASE, "connection refused")
    finally:
        await engine.dispose()


async def test_a_connection_terminated_by_an_administrator(database):
    conn = await asyncpg.connect(_dsn(database["admin_url"]))
    admin = await asyncpg.connect(_dsn(database["admin_url"]))
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
        await asyncio.sleep(0.1)
        exc = await _error(conn.fetchval("SELECT 1"))
        found = unavailable(exc)
        assert found is not None and found.dependency == DATABASE
        assert retryable(exc)
    finally:
        await admin.close()
        await conn.close()


async def test_too_many_connections(database):
    role, password = f"warden_limit_{secrets.token_hex(4)}", secrets.token_hex(8)
    admin = await asyncpg.connect(_dsn(database["admin_url"]))
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1 PASSWORD '{password}'")
    url = make_url(database["admin_url"]).set(username=role, password=password)
    first = None
    try:
        first = await asyncpg.connect(_dsn(url.render_as_string(hide_password=False)))
        exc = await _error(asyncpg.connect(_dsn(url.render_as_string(hide_password=False))))
        assert unavailable(exc) == Unavailable(DATABASE, "too many connections")
    finally:
        if first is not None:
            await first.close()
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_no_pooled_connection_free_in_time(database):
    engine = create_async_engine(
        database["runtime_url"], pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    try:
        async with engine.connect():
            exc = await _error(engine.raw_connection())
        assert isinstance(exc, PoolTimeout)
        assert unavailable(exc) == Unavailable(DATABASE, "no connection free in time")
    finally:
        await engine.dispose()


async def test_a_refused_redis():
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        exc = await _error(redis.ping())
        assert unavailable(exc) == Unavailable(REDIS, "connection failed")
    finally:
        await redis.aclose()


async def test_errors_that_are_not_an_outage(database, runtime_engine):
    engine = create_async_engine(database["admin_url"])
    try:
        async with engine.connect() as conn:
            syntax = await _error(conn.execute(text("SELEC 1")))
            await conn.rollback()
            division = await _error(
                conn.execute(text("SELECT 1 FROM (VALUES (1)) v(x) WHERE 1/0 = 1"))
            )
    finally:
        await engine.dispose()
    for exc in (syntax, division, ValueError("x"), FileNotFoundError(2, "gone"), KeyError("k")):
        assert unavailable(exc) is None, exc
        assert not retryable(exc), exc


@pytest.mark.parametrize(
    "exc",
    [
        DBAPIError("COMMIT", {}, asyncpg.exceptions.DeadlockDetectedError("deadlock")),
        DBAPIError("SELECT", {}, asyncpg.exceptions.SerializationError("conflict")),
        DBAPIError("SELECT", {}, asyncpg.exceptions.LockNotAvailableError("lock timeout")),
    ],
)
def test_conflicts_are_retryable_not_an_outage(exc):
    assert unavailable(exc) is None
    assert retryable(exc)


@pytest.mark.parametrize(
    "exc,reason",
    [
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), None),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), None),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"), None),
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            None,
        ),
        (
            InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
            None,
        ),
        (ConnectionResetError(), "connection lost"),
        (TimeoutError(), "timeout"),
    ],
)
def test_what_a_restart_raises_is_an_outage(exc, reason):
    found = unavailable(exc)
    assert found is not None and found.dependency == DATABASE
    assert reason is None or found.reason == reason
    wrapped = RuntimeError("while handling")
    wrapped.__cause__ = exc
    assert unavailable(wrapped) == found  # found through what it was raised from


def test_integrity_errors_are_not_an_outage():
    exc = IntegrityError("INSERT", {}, asyncpg.exceptions.UniqueViolationError("dup"))
    assert unavailable(exc) is None and not retryable(exc)
