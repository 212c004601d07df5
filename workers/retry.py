"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import random
from collections.abc import Iterator

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

# serialization failure, deadlock, lock timeout, server shutting down / starting, too many
# connections; class 08 (connection exceptions) is matched by prefix.
TRANSIENT_SQLSTATES = frozenset(
    {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300", "53400"}
)
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    DisconnectionError,
    InterfaceError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )


def is_transient(exc: BaseException) -> bool:
    """A lost connection (database or Redis), a deadlock or a serialization failure."""
    for e in _chain(exc):
        if isinstance(e, TRANSIENT_TYPES):
            return True
        if isinstance(e, OperationalError) and getattr(e, "connection_invalidated", False):
            return True
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and (state in TRANSIENT_SQLSTATES or state.startswith("08")):
            return True
        if type(e).__module__.startswith("asyncpg") and "Connection" in type(e).__name__:
            return True
    return False


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, then a random value in
    its upper half (so retries of many jobs do not arrive together)."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
