"""Registration, login, refresh rotation, logout, password change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.base import new_id
from app.db.models import AuthSession, User
from app.db.tenant import apply_context
from app.errors import BadRequest, Conflict, TooManyRequests, Unauthorized
from app.security import throttle
from app.security.passwords import hash_password, hasher, verify_password
from app.security.tokens import (
    RefreshToken,
    digests_match,
    issue_access_token,
    new_refresh_token,
    parse_refresh_token,
)
from app.services.audit import add_user_event

INVALID_LOGIN = "Invalid email or password"


@dataclass(frozen=True)
class Client:
    """Where a call came from, for the session row and the user's security events."""

    ip: str | None
    user_agent: str | None
    method: str = "POST"
    path: str = ""
    request_id: str | None = None
    body: Any = None  # already redacted


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


def _now() -> datetime:
    return datetime.now(UTC)


def _event_values(
    client: Client, user_id: uuid.UUID, action: str, status: int = 200
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "action": action,
        "method": client.method,
        "path": client.path,
        "path_params": {},
        "query_params": {},
        "body": client.body,
        "resource_type": "auth",
        "status": status,
        "source_ip": client.ip,
        "user_agent": client.user_agent,
        "request_id": client.request_id,
    }


async def _event(
    session: AsyncSession, client: Client, user_id: uuid.UUID, action: str, status: int = 200
) -> None:
    """The user's security event, in the transaction that did the thing (context: that user)."""
    await add_user_event(session, _event_values(client, user_id, action, status))


async def register(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    name: str,
    client: Client,
) -> User:
    """A new account and its first security event, both written by `warden_register_user`: the
    runtime role cannot insert users (so it can never create a platform admin), and on Citus
    the event's shard would not see a user another role's connection has just added."""
    user_id = new_id()
    event = {**_event_values(client, user_id, "register", status=201), "id": new_id()}
    try:
        await session.execute(
            text("SELECT warden_register_user(:id, :email, :name, :hash, :event)"),
            {
                "id": user_id,
                "email": email.lower(),
                "name": name,
                "hash": hash_password(settings, password),
                "event": orjson.dumps(event, default=str).decode(),
            },
        )
    except IntegrityError:
        raise Conflict("An account with this email already exists") from None
    return (await session.execute(select(User).where(User.id == user_id))).scalar_one()


async def _start_family(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, client: Client
) -> Tokens:
    family_id = new_id()
    return await _issue(session, settings, user_id, family_id, client)


async def _issue(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    client: Client,
) -> Tokens:
    refresh = new_refresh_token(user_id)
    now = _now()
    session.add(
        AuthSession(
            user_id=user_id,
            id=refresh.session_id,
            family_id=family_id,
            token_hash=refresh.digest,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
            user_agent=(client.user_agent or "")[:400] or None,
            ip=client.ip,
        )
    )
    await session.flush()
    access, ttl = issue_access_token(settings, user_id, family_id)
    return Tokens(access_token=access, refresh_token=refresh.encode(), expires_in=ttl)


async def login(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis | None,
    settings: Settings,
    email: str,
    password: str,
    client: Client,
) -> Tokens:
    """Same body and (argon2-dominated) time for an unknown email and a wrong password."""
    wait = await throttle.retry_after(redis, settings, email, client.ip)
    if wait:
        raise TooManyRequests(
            "Too many failed logins; try again later", headers={"Retry-After": str(wait)}
        )
    lookup = email.strip().lower()
    async with sessionmaker() as session, session.begin():
        row = None
        if "\x00" not in lookup:  # no stored email holds NUL, and the database refuses it
            row = (
                await session.execute(
                    text("SELECT user_id, password_hash, is_active FROM warden_login_lookup(:e)"),
                    {"e": lookup},
                )
            ).one_or_none()
        ok = verify_password(settings, row.password_hash if row else None, password)
        if not ok or row is None or not row.is_active:
            await throttle.record_failure(redis, settings, email, client.ip)
            raise Unauthorized(INVALID_LOGIN)
        await apply_context(session, None, row.user_id)
        if hasher(settings).check_needs_rehash(row.password_hash):
            # Keep every stored hash at the configured cost (and login timing uniform).
            await session.execute(
                update(User)
                .where(User.id == row.user_id)
                .values(password_hash=hash_password(settings, password))
            )
        tokens = await _start_family(session, settings, row.user_id, client)
        await _event(session, client, row.user_id, "login")
    await throttle.clear_failures(redis, email, client.ip)
    return tokens


async def _revoke(session: AsyncSession, *where: Any) -> None:
    """Revoke the matching sessions. The rows are locked first and the UPDATE runs as a second
    statement (a fresh snapshot under READ COMMITTED), so a refresh that was rotating one of them
    concurrently has committed by then and its new row is revoked too."""
    await session.execute(select(AuthSession.id).where(*where).with_for_update())
    await session.execute(
        update(AuthSession)
        .where(*where, AuthSession.revoked_at.is_(None))
        .values(revoked_at=_now())
    )


async def _revoke_family(session: AsyncSession, user_id: uuid.UUID, family_id: uuid.UUID) -> None:
    await _revoke(session, AuthSession.user_id == user_id, AuthSession.family_id == family_id)


async def _find(session: AsyncSession, token: RefreshToken) -> AuthSession:
    """The token's row, locked: two concurrent refreshes of one token must not both see it
    unspent (the second waits, then finds it rotated and revokes the family)."""
    row = (
        await session.execute(
            select(AuthSession)
            .where(AuthSession.user_id == token.user_id, AuthSession.id == token.session_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or not digests_match(row.token_hash, token.digest):
        raise Unauthorized("Invalid refresh token")
    return row


async def refresh(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, raw: str, client: Client
) -> Tokens:
    """Rotate: the presented token is spent. Presenting a spent token revokes its family."""
    token = parse_refresh_token(raw)
    reused = False
    async with sessionmaker() as session, session.begin():
        await apply_context(session, None, token.user_id)
        row = await _find(session, token)
        active = (
            await session.execute(
                text("SELECT authenticated FROM warden_request_context(:u, :f, NULL)"),
                {"u": token.user_id, "f": row.family_id},
            )
        ).scalar_one()
        if row.rotated_at is not None:
            await _revoke_family(session, token.user_id, row.family_id)
            await _event(session, client, token.user_id, "refresh_reuse", status=401)
            reused = True
        elif active and row.revoked_at is None and row.expires_at > _now():
            row.rotated_at = _now()
            tokens = await _issue(session, settings, token.user_id, row.family_id, client)
            await _event(session, client, token.user_id, "refresh")
            return tokens
    if reused:
        raise Unauthorized("Refresh token reuse detected; the session was revoked")
    raise Unauthorized("Invalid refresh token")


async def logout(session: AsyncSession, user_id: uuid.UUID, family_id: uuid.UUID) -> None:
    await _revoke_family(session, user_id, family_id)


async def change_password(
    session: AsyncSession,
    redis: Redis | None,
    settings: Settings,
    user_id: uuid.UUID,
    current: str,
    new: str,
    client: Client,
) -> None:
    """Check the current password (throttled like login), store the new hash, and revoke every
    session of the user."""
    email = (await session.execute(select(User.email).where(User.id == user_id))).scalar_one()
    wait = await throttle.retry_after(redis, settings, email, client.ip)
    if wait:
        raise TooManyRequests(
            "Too many failed attempts; try again later", headers={"Retry-After": str(wait)}
        )
    row = (
        await session.execute(
            text("SELECT password_hash FROM warden_login_lookup(:e)"), {"e": email}
        )
    ).one_or_none()
    if not verify_password(settings, row.password_hash if row else None, current):
        await throttle.record_failure(redis, settings, email, client.ip)
        raise BadRequest("The current password is wrong")
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=hash_password(settings, new))
    )
    await _revoke(session, AuthSession.user_id == user_id)
