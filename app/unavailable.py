"""Which errors mean "a dependency is unavailable": the one classification requests (503 with
`Retry-After`), the readiness probe, the worker (wait and reconnect) and job retries share.

Invariant: an error is classified by what it is (its type, its SQLSTATE, the errors it was
raised from), never by where it was raised. Unavailable means the database or Redis cannot be
reached or cannot serve right now — refused, reset, timed out, starting up, shutting down,
terminated by an administrator, out of connections, or a connection left unusable by one of
those — not a bug and not bad input, so the same request can succeed later unchanged.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from asyncpg.exceptions._base import InternalClientError
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors

T = TypeVar("T")

DATABASE = "database"
REDIS = "redis"

# SQLSTATE → reason. Class 08 (connection exceptions) is matched by its prefix.
_SQLSTATES = {
    "57P01": "terminated by an administrator",
    "57P02": "crash shutdown",
    "57P03": "not accepting connections",  # starting up, shutting down, in recovery
    "57P04": "database dropped",
    "53300": "too many connections",
    "53400": "configuration limit exceeded",
    "53100": "disk full",
    "53200": "out of memory",
}
_NETWORK_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ETIMEDOUT}
)
# Conflicts between concurrent transactions: not an outage, but worth another attempt.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})

# The exception types an unavailable dependency can surface as (the HTTP layer answers these;
# each instance is still classified, since a few of these types also mean a bug).
CANDIDATE_TYPES: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable, timeouts (TimeoutError is an OSError)
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    InternalClientError,  # asyncpg's protocol state after a broken connection
    sa_errors.SQLAlchemyError,
    sa_errors.EmulatedDBAPIException,  # the asyncpg adapter's errors outside a Connection
    redis_errors.RedisError,
)


@dataclass(frozen=True)
class Unavailable:
    dependency: str  # DATABASE or REDIS
    reason: str  # short, for logs, metrics and the problem's detail (never SQL, never a host)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it was raised from or during (SQLAlchemy's `.orig`, `__cause__`,
    `__context__`), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )


def _one(e: BaseException) -> Unavailable | None:
    if isinstance(e, redis_errors.RedisError):
        if isinstance(e, redis_errors.BusyLoadingError):
            return Unavailable(REDIS, "loading its data")
        if isinstance(e, redis_errors.TimeoutError):
            return Unavailable(REDIS, "timeout")
        if isinstance(e, redis_errors.ConnectionError):
            return Unavailable(REDIS, "connection failed")
        return None
    state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
    if isinstance(state, str):
        if state.startswith("08"):
            return Unavailable(DATABASE, "connection lost")
        if state in _SQLSTATES:
            return Unavailable(DATABASE, _SQLSTATES[state])
    if isinstance(e, asyncpg.InterfaceError | InternalClientError):
        # "connection is closed", "another operation is in progress", "cannot switch to state":
        # a connection a restart left half-dead.
        return Unavailable(DATABASE, "connection lost")
    if isinstance(e, sa_errors.TimeoutError):
        return Unavailable(DATABASE, "no connection free in time")
    if isinstance(e, sa_errors.DisconnectionError):
        return Unavailable(DATABASE, "connection lost")
    if isinstance(e, sa_errors.DBAPIError) and e.connection_invalidated:
        return Unavailable(DATABASE, "connection lost")
    if isinstance(e, ConnectionRefusedError):
        return Unavailable(DATABASE, "connection refused")
    if isinstance(e, ConnectionError):
        return Unavailable(DATABASE, "connection lost")
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return Unavailable(DATABASE, "timeout")
    if isinstance(e, socket.gaierror):
        return Unavailable(DATABASE, "host not found")
    if isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS:
        return Unavailable(DATABASE, "network error")
    return None


def unavailable(exc: BaseException) -> Unavailable | None:
    """Which dependency `exc` says is unavailable, and why; None for anything else. A bare
    socket error is the database's: the Redis client wraps its own."""
    for e in causes(exc):
        found = _one(e)
        if found is not None:
            return found
    return None


def retryable(exc: BaseException) -> bool:
    """Worth another attempt unchanged: a dependency was unavailable, or the transaction lost a
    conflict with another (serialization failure, deadlock, lock timeout)."""
    if unavailable(exc) is not None:
        return True
    for e in causes(exc):
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and state in RETRYABLE_SQLSTATES:
            return True
    return False


async def retry_while_unavailable(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    max_delay: float = 30.0,
) -> T:
    """Run `work` until it stops failing for an unavailable dependency, waiting between attempts
    (0.5 s, doubling up to `max_delay`, with jitter); any other error propagates. One log line
    per failed attempt, naming what waits, for which dependency and why."""
    delay = 0.5
    while True:
        try:
            return await work()
        except Exception as exc:
            lost = unavailable(exc)
            if lost is None:
                raise
            wait = random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not security
            log.warning(
                "%s: %s unavailable (%s); retrying in %.1fs",
                what,
                lost.dependency,
                lost.reason,
                wait,
                extra={"dependency": lost.dependency, "reason": lost.reason},
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, max_delay)


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log that `what` failed: one warning line when a dependency was unavailable (expected in
    an outage, and said once per attempt), the traceback otherwise (a bug)."""
    lost = unavailable(exc)
    if lost is None:
        log.error("%s", what, exc_info=exc)
        return
    log.warning(
        "%s: %s unavailable (%s)",
        what,
        lost.dependency,
        lost.reason,
        extra={"dependency": lost.dependency, "reason": lost.reason},
    )
