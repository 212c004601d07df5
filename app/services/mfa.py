"""The TOTP second factor: enrolment, confirmation (with recovery codes), turning it off, and
the code check of a login. Wrong codes are throttled per user; a code is accepted once."""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import User, UserMfa
from app.errors import Conflict, NotFound, TooManyRequests
from app.security import throttle, totp
from app.security.principal import UserContext

QR_PATH = "/api/v1/me/mfa/totp/qr.png"


async def _factor(session: AsyncSession, user_id: uuid.UUID) -> UserMfa | None:
    stmt = select(UserMfa).where(UserMfa.user_id == user_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def is_on(session: AsyncSession, user_id: uuid.UUID) -> bool:
    stmt = select(UserMfa.enabled_at).where(UserMfa.user_id == user_id)
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def status(ctx: UserContext) -> dict[str, Any]:
    factor = await _factor(ctx.session, ctx.principal.user_id)
    enabled = factor is not None and factor.enabled_at is not None
    return {
        "enabled": enabled,
        "pending": factor is not None and not enabled,
        "enabled_at": factor.enabled_at if factor else None,
        "recovery_codes_left": len(factor.recovery_hashes) if enabled and factor else 0,
    }


async def enroll(ctx: UserContext, settings: Settings) -> dict[str, Any]:
    """A new secret, pending until a code from it is confirmed (replacing a pending one)."""
    session, user_id = ctx.session, ctx.principal.user_id
    factor = await _factor(session, user_id)
    if factor is not None and factor.enabled_at is not None:
        raise Conflict("TOTP is already on; turn it off first to enrol a new device")
    secret = totp.new_secret()
    if factor is None:
        session.add(UserMfa(user_id=user_id, totp_secret=totp.seal(settings, secret)))
    else:
        factor.totp_secret, factor.last_step = totp.seal(settings, secret), None
    await session.flush()
    email = (await session.execute(select(User.email).where(User.id == user_id))).scalar_one()
    return {
        "secret": secret,
        "otpauth_uri": totp.uri(settings, secret, email),
        "qr_png": QR_PATH,
    }


async def qr_code(ctx: UserContext, settings: Settings) -> bytes:
    """The pending enrolment's `otpauth://` URI as a QR code (never once TOTP is on)."""
    session, user_id = ctx.session, ctx.principal.user_id
    factor = await _factor(session, user_id)
    if factor is None or factor.enabled_at is not None:
        raise NotFound("No TOTP enrolment is pending")
    secret = totp.unseal(settings, factor.totp_secret)
    if secret is None:
        raise NotFound("No TOTP enrolment is pending")
    email = (await session.execute(select(User.email).where(User.id == user_id))).scalar_one()
    return totp.qr_png(totp.uri(settings, secret, email))


async def confirm(
    ctx: UserContext, settings: Settings, redis: Redis | None, code: str
) -> list[str]:
    """Turn TOTP on with a first code from the device; returns the ten recovery codes (shown
    only now; stored as keyed hashes)."""
    session, user_id = ctx.session, ctx.principal.user_id
    factor = await _factor(session, user_id)
    if factor is None:
        raise NotFound("No TOTP enrolment is pending; start one first")
    if factor.enabled_at is not None:
        raise Conflict("TOTP is already on")
    if not await verify(session, redis, settings, user_id, code, pending=True):
        raise Conflict("The code does not match; check the device's clock and try again")
    codes = totp.new_recovery_codes()
    await session.execute(
        text(
            "UPDATE user_mfa SET enabled_at = now(), recovery_hashes = :hashes "
            "WHERE user_id = :user"
        ),
        {"hashes": [totp.recovery_hash(settings, c) for c in codes], "user": user_id},
    )
    return codes


async def disable(ctx: UserContext, settings: Settings, redis: Redis | None, code: str) -> None:
    """Turn TOTP off, with a current code or a recovery code."""
    session, user_id = ctx.session, ctx.principal.user_id
    if not await is_on(session, user_id):
        raise NotFound("TOTP is not on")
    if not await verify(session, redis, settings, user_id, code):
        raise Conflict("The code does not match")
    await session.execute(delete(UserMfa).where(UserMfa.user_id == user_id))


async def verify(
    session: AsyncSession,
    redis: Redis | None,
    settings: Settings,
    user_id: uuid.UUID,
    code: str,
    *,
    pending: bool = False,
) -> bool:
    """Check a TOTP code (or, once TOTP is on, a recovery code, which is used up), throttled
    per user. A TOTP code's time step is recorded, so the same code never passes twice."""
    key = f"mfa:{user_id}"
    wait = await throttle.reserve(redis, settings, key, None, settings.mfa_max_failures)
    if wait:
        raise TooManyRequests(
            "Too many wrong codes; try again later", headers={"Retry-After": str(wait)}
        )
    ok = await _accept(session, settings, user_id, code, pending)
    if ok:
        await throttle.succeeded(redis, settings, key, None, per_address=False)
    return ok


async def _accept(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, code: str, pending: bool
) -> bool:
    factor = await _factor(session, user_id)
    if factor is None or (factor.enabled_at is None) != pending:
        return False
    if not pending and totp.looks_like_recovery_code(code):
        used = await session.execute(
            text(
                "UPDATE user_mfa SET recovery_hashes = array_remove(recovery_hashes, :h) "
                "WHERE user_id = :user AND :h = ANY (recovery_hashes) RETURNING user_id"
            ),
            {"h": totp.recovery_hash(settings, code), "user": user_id},
        )
        return used.first() is not None
    secret = totp.unseal(settings, factor.totp_secret)
    step = totp.matching_step(secret, code) if secret else None
    if step is None:
        return False
    # Accepted once: the step must be later than the last accepted one (atomically).
    taken = await session.execute(
        text(
            "UPDATE user_mfa SET last_step = :step WHERE user_id = :user "
            "AND (last_step IS NULL OR last_step < :step) RETURNING user_id"
        ),
        {"step": step, "user": user_id},
    )
    return taken.first() is not None
