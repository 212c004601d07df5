"""Password and second-factor throttling in Redis, atomic under concurrency.

Two fixed windows (`WARDEN_LOGIN_LOCKOUT_SECONDS`): attempts per (account, client address)
(`WARDEN_LOGIN_MAX_FAILURES`) and failed attempts per client address whatever the account
(`WARDEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS`: random emails from one address do not get around the
first). An attempt is *reserved* before the password is checked, in one Lua script that checks
both counters and increments them together, so thirty concurrent guesses for one account see
counts 1..30 and only the first `max` are checked; a success releases its reservation. The
client address is the peer's, or the forwarded one when the peer is a trusted proxy
(`WARDEN_TRUSTED_PROXIES`); an IPv6 address counts as its /64 network (whoever has one address
there has 2^64 of them). Second-factor codes use the per-account counter only.

Keys carry `WARDEN_REDIS_KEY_PREFIX`. Fails open when Redis is unreachable (logged): throttling
protects against guessing, and an outage of the cache must not lock every user out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.config import Settings

log = logging.getLogger("warden.throttle")

# KEYS: the account key, then (optionally) the address key. ARGV: the account limit, the
# address limit, the window. Answers 0 (reserved) or the seconds to wait.
_RESERVE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
    return math.max(redis.call('TTL', key), 1)
  end
end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[3]) end
end
return 0
"""
# A success: the account's failures are forgiven; the address's reservation is given back.
_RELEASE = """
redis.call('DEL', KEYS[1])
if KEYS[2] and tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _address(ip: str | None) -> str | None:
    """The address a limit counts: an IPv6 address's /64 network (an IPv4 one mapped into
    IPv6 is that IPv4 address); anything else as it is."""
    if not ip:
        return ip
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def _keys(settings: Settings, account: str, ip: str | None, per_address: bool) -> list[str]:
    prefix = settings.redis_key_prefix
    ip = _address(ip)
    who = f"{account.strip().lower()}|{ip or '-'}"
    keys = [f"{prefix}:login-fail:{_digest(who)}"]
    if per_address and ip:
        keys.append(f"{prefix}:login-addr:{_digest(ip)}")
    return keys


async def _eval(redis: Redis, script: str, keys: list[str], args: list[str]) -> Any:
    return await redis.eval(script, len(keys), *keys, *args)  # type: ignore[misc]


async def reserve(
    redis: Redis | None,
    settings: Settings,
    account: str,
    ip: str | None,
    max_failures: int | None = None,
) -> int:
    """Reserve one attempt: 0 when it may go ahead, else the seconds until the next may.
    `max_failures` defaults to the login limit; with one given (second-factor codes), only the
    per-account counter applies."""
    if redis is None:
        return 0
    per_address = max_failures is None
    limit = max_failures if max_failures is not None else settings.login_max_failures
    keys = _keys(settings, account, ip, per_address)
    args = [limit, settings.login_max_attempts_per_address, settings.login_lockout_seconds]
    try:
        return int(await _eval(redis, _RESERVE, keys, [str(a) for a in args]))
    except RedisError:
        log.warning("login throttle unavailable (redis)")
        return 0


async def succeeded(
    redis: Redis | None, settings: Settings, account: str, ip: str | None, per_address: bool = True
) -> None:
    """The attempt was right: forget the account's failures, give back the address's slot."""
    if redis is None:
        return
    keys = _keys(settings, account, ip, per_address)
    try:
        await _eval(redis, _RELEASE, keys, [])
    except RedisError:
        log.warning("login throttle unavailable (redis)")


async def within_rate(
    redis: Redis | None, settings: Settings, what: str, ip: str | None, per_minute: int
) -> bool:
    """Whether one more `what` from this client address fits this minute's budget (fails open;
    no address, no budget)."""
    address = _address(ip)
    if redis is None or not address:
        return True
    key = f"{settings.redis_key_prefix}:{what}:{_digest(address)}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 60, nx=True)
            count, _ = await pipe.execute()
    except RedisError:
        log.warning("rate limit unavailable (redis)")
        return True
    return int(count) <= per_minute
