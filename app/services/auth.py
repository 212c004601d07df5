"""Registration, login (password, second factor, external IdP), refresh rotation, logout,
password change."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.audit import add_user_event
from app.db.base import new_id
from app.db.citus import SEQUENTIAL
from app.db.models import AuthSession, User
from app.db.session import Database
from app.db.tenant import apply_context
from app.db.transaction import Transaction
from app.errors import BadRequest, Conflict, TooManyRequests, Unauthorized
from app.security import throttle
from app.security.passwords import hash_password, verify_password
from app.security.principal import UserContext
from app.security.providers import (
    AuthProviders,
    Identity,
    PasswordCredentials,
    TokenCredentials,
    configured,
)
from app.security.tokens import (
    RefreshToken,
    decode_mfa_token,
    digests_match,
    issue_access_token,
    issue_mfa_token,
    new_refresh_token,
    parse_refresh_token,
)
from app.services import mfa
from app.services.invitations import notify_on_registration

log = logging.getLogger("warden.auth")


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
    tx: Transaction, client: Client, user_id: uuid.UUID, action: str, status: int = 200
) -> None:
    """The user's security event, in the transaction that did the thing (context: that user)."""
    await add_user_event(tx, _event_values(client, user_id, action, status))


async def register(
    db: Database,
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
    event = _event_values(client, user_id, "register", status=201)
    password_hash = await hash_password(settings, password)  # before holding a connection
    async with db.transaction() as tx:
        await apply_context(tx, None, user_id)
        try:
            async with tx.session.begin_nested():
                await tx.session.execute(
                    text("SELECT warden_register_user(:id, :email, :name, :hash, :event)"),
                    {
                        "id": user_id,
                        "email": email.lower(),
                        "name": name,
                        "hash": password_hash,
                        "event": orjson.dumps(event, default=str).decode(),
                    },
                )
        except IntegrityError:
            raise Conflict("An account with this email already exists") from None
        await notify_on_registration(tx)
        user = (await tx.session.execute(select(User).where(User.id == user_id))).scalar_one()
    return user


async def _start_family(
    tx: Transaction, settings: Settings, user_id: uuid.UUID, client: Client
) -> Tokens:
    family_id = new_id()
    return await _issue(tx.session, settings, user_id, family_id, client)


async def _issue(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    client: Client,
    *,
    until: datetime | None = None,
) -> Tokens:
    refresh = new_refresh_token(user_id)
    now = _now()
    expires = now + timedelta(seconds=settings.refresh_token_ttl_seconds)
    session.add(
        AuthSession(
            user_id=user_id,
            id=refresh.session_id,
            family_id=family_id,
            token_hash=refresh.digest,
            created_at=now,
            expires_at=min(expires, until) if until is not None else expires,
            user_agent=(client.user_agent or "")[:400] or None,
            ip=client.ip,
        )
    )
    await session.flush()
    access, ttl = issue_access_token(settings, user_id, family_id)
    return Tokens(access_token=access, refresh_token=refresh.encode(), expires_in=ttl)


@dataclass(frozen=True)
class MfaChallenge:
    """The password was right; the second factor is still owed (at `POST /auth/mfa`)."""

    mfa_token: str
    expires_in: int


async def _refuse_when_throttled(
    redis: Redis | None,
    settings: Settings,
    key: str,
    ip: str | None,
    what: str,
    max_failures: int | None = None,
) -> None:
    wait = await throttle.reserve(redis, settings, key, ip, max_failures)
    if wait:
        raise TooManyRequests(
            f"Too many failed {what}; try again later", headers={"Retry-After": str(wait)}
        )


async def login(
    db: Database,
    redis: Redis | None,
    settings: Settings,
    email: str,
    password: str,
    client: Client,
    providers: AuthProviders | None = None,
) -> Tokens | MfaChallenge:
    """Same body and (argon2-dominated) time for an unknown email and a wrong password. With
    MFA on, no login is started yet: the answer is a short-lived MFA token."""
    providers = providers or configured(settings)
    # A wrong password keeps its reserved attempt counted; a right one gives it back.
    await _refuse_when_throttled(redis, settings, email, client.ip, "logins")
    # Hashing holds no database connection (see `PasswordProvider`): the check comes first.
    identity = await providers.authenticate(db, PasswordCredentials(email, password))
    rehashed = None
    if identity.needs_rehash and identity.password_hash:
        # Keep every stored hash at the configured cost (and login timing uniform); only the
        # hash just verified is replaced (a concurrent change of password wins).
        rehashed = await hash_password(settings, password)
    async with db.transaction() as tx:
        user_id = await _local_user(tx, settings, identity, client)
        await apply_context(tx, None, user_id)
        if rehashed is not None and identity.password_hash:
            await swap_password_hash(tx, identity.password_hash, rehashed)
        if await mfa.is_on(tx.session, user_id):
            await _event(tx, client, user_id, "login_password")
            challenge = MfaChallenge(
                issue_mfa_token(settings, user_id), settings.mfa_token_ttl_seconds
            )
        else:
            challenge = None
            tokens = await _start_family(tx, settings, user_id, client)
            await _event(tx, client, user_id, "login")
    await throttle.succeeded(redis, settings, email, client.ip)
    return challenge or tokens


async def _local_user(
    tx: Transaction, settings: Settings, identity: Identity, client: Client
) -> uuid.UUID:
    """The Warden user an identity is: itself, or the one provisioned for the IdP person."""
    if identity.user_id is not None:
        return identity.user_id
    assert identity.issuer and identity.subject and identity.email
    rows = await tx.fetch(
        "SELECT user_id, outcome, is_active FROM warden_oidc_sign_in($1, $2, $3, $4, $5)",
        identity.issuer,
        identity.subject,
        identity.email,
        identity.email_verified,
        (identity.name or identity.email)[:200],
    )
    row = rows[0]
    if row["outcome"] == "conflict":
        raise Conflict(
            "An account with this email exists and the identity provider does not say the "
            "email is verified; sign in with the password, or ask the IdP to verify the email"
        )
    if not row["is_active"]:
        raise Unauthorized("This account is disabled")
    return uuid.UUID(str(row["user_id"]))


async def complete_mfa(
    db: Database,
    redis: Redis | None,
    settings: Settings,
    mfa_token: str,
    code: str,
    client: Client,
) -> Tokens:
    """The second step of a login: a valid MFA token and a TOTP or recovery code. Wrong codes
    are throttled per user; a code is accepted once."""
    user_id, _ = decode_mfa_token(settings, mfa_token)
    async with db.transaction() as tx:
        await apply_context(tx, None, user_id)
        if not await mfa.verify(tx.session, redis, settings, user_id, code):
            raise Unauthorized("Invalid code")
        tokens = await _start_family(tx, settings, user_id, client)
        await _event(tx, client, user_id, "login")
    return tokens


async def external_sign_in(
    db: Database,
    settings: Settings,
    identity: Identity,
    client: Client,
    *,
    until: datetime | None = None,
) -> tuple[uuid.UUID, uuid.UUID, Tokens]:
    """Sign in a person an external IdP vouched for: provision them on first sign-in (by issuer
    and subject), make their memberships follow their groups (each change audited in its
    workspace), start a login (ending at `until` when given). (user id, family id, tokens).

    Two transactions: what the definer functions write (the person, their invitations' notices,
    their memberships), then the login the runtime role writes — on Citus one transaction may
    not touch a user's shards as two roles. A login that fails after the first leaves the
    person provisioned and their memberships synced, as the next sign-in would."""
    async with db.transaction() as tx:
        if tx.on_citus:
            # It writes the users (a reference table), then reads tables that refer to them
            # across shards: Citus allows that over one connection per node only.
            await tx.begin_with(SEQUENTIAL)
        user_id = await _local_user(tx, settings, identity, client)
        await apply_context(tx, None, user_id)
        await notify_on_registration(tx)  # a person provisioned now hears of their invitations
        changes = await tx.fetch(
            "SELECT workspace_id, action FROM warden_idp_sync($1, $2, $3, $4)",
            list(identity.groups),
            client.ip,
            (client.user_agent or "")[:400] or None,
            client.request_id,
        )
    async with db.transaction() as tx:
        await apply_context(tx, None, user_id)
        family_id = new_id()
        tokens = await _issue(tx.session, settings, user_id, family_id, client, until=until)
        await _event(tx, client, user_id, f"login_{identity.provider}")
    log.info("external sign-in", extra={"provider": identity.provider, "changes": len(changes)})
    return user_id, family_id, tokens


async def token_login(
    db: Database, settings: Settings, providers: AuthProviders, token: str, client: Client
) -> Tokens:
    """Exchange an IdP token for Warden's own pair."""
    identity = await providers.authenticate(None, TokenCredentials(token))
    if not identity.external:
        raise Unauthorized()
    return (await external_sign_in(db, settings, identity, client))[2]


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


async def refresh(db: Database, settings: Settings, raw: str, client: Client) -> Tokens:
    """Rotate: the presented token is spent. Presenting a spent token revokes its family."""
    token = parse_refresh_token(raw)
    reused = False
    async with db.transaction() as tx:
        await apply_context(tx, None, token.user_id)
        session = tx.session
        row = await _find(session, token)
        active = (
            await tx.fetch(
                "SELECT authenticated FROM warden_request_context($1, $2, NULL)",
                token.user_id,
                row.family_id,
            )
        )[0]["authenticated"]
        if row.rotated_at is not None:
            await _revoke_family(session, token.user_id, row.family_id)
            await _event(tx, client, token.user_id, "refresh_reuse", status=401)
            reused = True
        elif active and row.revoked_at is None and row.expires_at > _now():
            row.rotated_at = _now()
            tokens = await _issue(session, settings, token.user_id, row.family_id, client)
            await _event(tx, client, token.user_id, "refresh")
            return tokens
    if reused:
        raise Unauthorized("Refresh token reuse detected; the session was revoked")
    raise Unauthorized("Invalid refresh token")


async def logout(ctx: UserContext) -> None:
    assert ctx.principal.family_id is not None  # an account route: never an API key
    await _revoke_family(ctx.session, ctx.principal.user_id, ctx.principal.family_id)


async def swap_password_hash(tx: Transaction, current_hash: str, new_hash: str) -> bool:
    """Replace the password hash of the user in context, only if it is still `current_hash`
    (the runtime role cannot write the column; `warden_change_password` compares and swaps)."""
    rows = await tx.fetch(
        "SELECT warden_change_password($1, $2) AS swapped", current_hash, new_hash
    )
    return bool(rows[0]["swapped"])


async def change_password(
    ctx: UserContext,
    redis: Redis | None,
    settings: Settings,
    current: str,
    new: str,
    client: Client,
) -> None:
    """Check the current password (throttled like login), store the new hash, and revoke every
    session of the user."""
    session, user_id = ctx.session, ctx.principal.user_id
    email = (await session.execute(select(User.email).where(User.id == user_id))).scalar_one()
    await _refuse_when_throttled(redis, settings, email, client.ip, "attempts")
    rows = await ctx.tx.fetch("SELECT password_hash FROM warden_login_lookup($1)", email)
    stored = rows[0]["password_hash"] if rows else None
    if not await verify_password(settings, stored, current):
        raise BadRequest("The current password is wrong")  # the attempt stays counted
    assert stored is not None
    if not await swap_password_hash(ctx.tx, stored, await hash_password(settings, new)):
        raise Conflict("The password was changed meanwhile; try again")
    await _revoke(session, AuthSession.user_id == user_id)
    await throttle.succeeded(redis, settings, email, client.ip)
