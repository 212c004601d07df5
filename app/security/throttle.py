"""Failed-login throttling in Redis: per (email, client address), a fixed lockout window (also
used per user for second-factor codes).

Fails open when Redis is unreachable (logged): throttling protects against guessing, and an
outage of the cache must not lock every user out of the service.
"""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.config import Settings

log = logging.getLogger("warden.throttle")


def _key(email: str, ip: str | None) -> str:
    digest = hashlib.sha256(f"{email.strip().lower()}|{ip or '-'}".encode()).hexdigest()
    return f"warden:login-fail:{digest}"


async def retry_after(
    redis: Redis | None,
    settings: Settings,
    email: str,
    ip: str | None,
    max_failures: int | None = None,
) -> int:
    """Seconds until the next attempt is allowed (0 = allowed now); `max_failures` defaults to
    the login limit."""
    limit = max_failures if max_failures is not None else settings.login_max_failures
    if redis is None:
        return 0
    try:
        key = _key(email, ip)
        failures = await redis.get(key)
        if failures is not None and int(failures) >= limit:
            ttl = await redis.ttl(key)
            return max(int(ttl), 1)
    except RedisError:
        log.warning("login throttle unavailable (redis)")
    return 0


async def record_failure(
    redis: Redis | None, settings: Settings, email: str, ip: str | None
) -> None:
    if redis is None:
        return
    try:
        key = _key(email, ip)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, settings.login_lockout_seconds)
            await pipe.execute()
    except RedisError:
        log.warning("login throttle unavailable (redis)")


async def clear_failures(redis: Redis | None, email: str, ip: str | None) -> None:
    if redis is None:
        return
    try:
        await redis.delete(_key(email, ip))
    except RedisError:
        log.warning("login throttle unavailable (redis)")
