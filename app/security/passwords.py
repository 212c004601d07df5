"""Password hashing (argon2id). Verification time does not depend on whether the user exists.

Hashing is deliberately slow (tens of milliseconds of CPU), so it never runs on the event loop:
`hash_password` and `verify_password` run in a small thread pool of their own
(`WARDEN_PASSWORD_HASH_THREADS`; argon2 releases the GIL), and a burst of logins waits for a
slot there instead of stalling every other request of the process. A login checks the password
after its lookup has given its database connection back, and registration hashes before it
takes one, so the sign-ins waiting for a thread hold no connection.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import Settings

T = TypeVar("T")


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_cost)


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int) -> str:
    return _hasher(time_cost, memory_cost).hash("warden-timing-equalizer")


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="warden-argon2")


def pool_size(settings: Settings) -> int:
    """The configured number of hashing threads; by default one core is left to the loop."""
    return settings.password_hash_threads or max(1, (os.cpu_count() or 2) - 1)


async def _off_loop(settings: Settings, fn: Callable[..., T], *args: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(pool_size(settings)), fn, *args)


async def hash_password(settings: Settings, password: str) -> str:
    return await _off_loop(settings, hash_password_sync, settings, password)


async def verify_password(settings: Settings, stored_hash: str | None, password: str) -> bool:
    """Check `password` off the event loop (see the module's docstring)."""
    return await _off_loop(settings, _verify, settings, stored_hash, password)


def hash_password_sync(settings: Settings, password: str) -> str:
    """For scripts with no event loop of their own to protect (seed data, benchmarks)."""
    return hasher(settings).hash(password)


def _verify(settings: Settings, stored_hash: str | None, password: str) -> bool:
    """Check `password`; with no stored hash (unknown user) or one that is no argon2 hash (an
    account made by single sign-on has none) do the same work against a dummy."""
    h = hasher(settings)
    if stored_hash is not None and not stored_hash.startswith("$argon2"):
        stored_hash = None
    target = stored_hash or _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_cost)
    try:
        ok = h.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None
