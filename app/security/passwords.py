"""Password hashing (argon2id). Verification time does not depend on whether the user exists."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import Settings


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_cost)


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int) -> str:
    return _hasher(time_cost, memory_cost).hash("warden-timing-equalizer")


def hash_password(settings: Settings, password: str) -> str:
    return hasher(settings).hash(password)


def verify_password(settings: Settings, stored_hash: str | None, password: str) -> bool:
    """Check `password`; with no stored hash (unknown user) do the same work against a dummy."""
    h = hasher(settings)
    target = stored_hash or _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_cost)
    try:
        ok = h.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None
