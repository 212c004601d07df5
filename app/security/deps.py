"""Request dependencies: authentication, the scoped transaction, permission checks.

Invariant: `get_workspace_session` is the only HTTP code path that enters a workspace. It
re-reads the session family and the membership on every request (nothing is trusted from the
token but identity), builds the principal and enters the workspace with the same functions jobs
use, and its transaction commits before the response is sent (the dependency is
function-scoped), so a failed commit can never be reported as success. It is also the audit
hook: after the handler, the call's record joins the same transaction (`get_user_session` does
the same for the caller's own log), and `record_denial` files refused calls under their actor.

Credentials: a Warden access token, an API key (`X-API-Key`, or `Authorization: Bearer wdn_…`)
or a token of the configured IdP. An API key is checked with the context lookup itself (one
statement), and its limits — permitted endpoints, bound workspace, permissions — are applied
here, once, for every route: the principal both sessions yield is already narrowed.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from app.db import audit as audit_log
from app.db.session import Database
from app.db.tenant import apply_context
from app.db.transaction import Transaction
from app.errors import Forbidden, MfaRequired, NotFound, Unauthorized
from app.metrics import DENIALS_NOT_STORED
from app.security import idempotency, throttle
from app.security.api_keys import KeyLimits, PresentedKey, looks_like_key, parse_key
from app.security.audit import RESPONSE_KEY, call_values, client_fields, redact, request_path
from app.security.keyring import same
from app.security.permissions import PERMISSIONS
from app.security.principal import (
    KEY_CONTEXT_SQL,
    REQUEST_CONTEXT_SQL,
    UserContext,
    UserPrincipal,
    WorkspaceContext,
    WorkspacePrincipal,
    enter_workspace,
    principal_from_row,
)
from app.security.tokens import AccessClaims, decode_access_token
from app.unavailable import log_failure

log = logging.getLogger("warden.audit")

SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    auto_error=False,
    description="A Warden access token, an API key (`wdn_…`) or a token of the configured IdP",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="APIKey",
    description="A personal or service API key (`wdn_<prefix>_<secret>`)",
)


@dataclass(frozen=True)
class Credential:
    """What the caller presented: a login (checked as far as possible without the database)
    or an API key (checked against the database with the context lookup)."""

    user: UserPrincipal | None = None
    key: PresentedKey | None = None


async def get_credential(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Credential:
    if api_key is not None:
        return Credential(key=parse_key(api_key))
    if not token:
        raise Unauthorized()
    if looks_like_key(token):
        return Credential(key=parse_key(token))
    settings = request.app.state.settings
    try:
        claims: AccessClaims = decode_access_token(settings, token)
    except Unauthorized:
        bearer = getattr(request.app.state, "bearer_sign_ins", None)
        if bearer is None:
            raise
        return Credential(user=await bearer.principal(request, token))
    return Credential(user=UserPrincipal(user_id=claims.user_id, family_id=claims.family_id))


async def _context_row(tx: Transaction, sql: str, *args: Any) -> Any:
    if tx.driver.is_in_transaction():
        rows = await tx.fetch(sql, *args)
        return rows[0] if rows else None
    return await tx.lookup(sql, *args)


async def load_principal(
    tx: Transaction, user: UserPrincipal, slug: str | None
) -> WorkspacePrincipal | None:
    """The caller's principal in workspace `slug`, read fresh (session family valid or key
    still there, active member, role, visibility, attributes), narrowed by the caller's key;
    None when they are not a member. Raises `Unauthorized` when the login or key is no longer
    valid. The same path for every request and for `/me/has-permission`."""
    if user.key is None:
        row = await _context_row(tx, REQUEST_CONTEXT_SQL, user.user_id, user.family_id, slug)
    else:
        row = await _context_row(tx, KEY_CONTEXT_SQL, user.key.prefix, slug)
        if row is not None and row["key_id"] != user.key.key_id:
            row = None
    return _principal(user, row)


def _principal(user: UserPrincipal, row: Any) -> WorkspacePrincipal | None:
    if row is None or not row["authenticated"]:
        raise Unauthorized()
    if row["workspace_id"] is None:
        return None
    key = user.key
    if key is not None and key.workspace_id not in (None, row["workspace_id"]):
        if key.is_service:
            return None  # a service key knows no other workspace
        raise Forbidden("This API key is bound to another workspace")
    return principal_from_row(user.user_id, row["workspace_id"], row, key)


async def authenticate(
    request: Request, tx: Transaction, credential: Credential, slug: str | None
) -> tuple[UserPrincipal, WorkspacePrincipal | None]:
    """The caller (and their principal in `slug`), for both sessions: a login's family is
    checked, a key's hash (constant time), expiry and permitted endpoints; the key's last use
    is stamped at most once a minute."""
    if credential.user is not None:
        user = credential.user
        return user, await load_principal(tx, user, slug)
    presented = credential.key
    assert presented is not None
    settings = request.app.state.settings
    row = await _context_row(tx, KEY_CONTEXT_SQL, presented.prefix, slug)
    if row is None or not same(bytes(row["secret_hash"]), presented.digest(settings)):
        raise Unauthorized("Invalid API key")
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        raise Unauthorized("This API key has expired")
    key = KeyLimits.from_row(row, presented.prefix)
    user = UserPrincipal(user_id=row["user_id"], family_id=None, key=key)
    request.state.actor_id = user.user_id
    path = request_path(request.scope)
    if not key.permits(request.method, path):
        raise Forbidden(key.endpoint_refusal(request.method, path))
    _stamp_use(request, tx, key, row["last_used_at"])
    return user, _principal(user, row)


# When each key's use was last stamped by this process (bounded): a burst of requests with one
# key sends one stamp, not one per request that read the old value.
_STAMPED: dict[uuid.UUID, float] = {}
STAMP_EVERY = 60.0


def _stamp_use(request: Request, tx: Transaction, key: KeyLimits, last: datetime | None) -> None:
    now = time.time()
    if last is not None and now - last.timestamp() < STAMP_EVERY:
        return
    if now - _STAMPED.get(key.key_id, 0.0) < STAMP_EVERY:
        return
    if len(_STAMPED) > 10_000:
        _STAMPED.clear()
    _STAMPED[key.key_id] = now
    db: Database = request.app.state.db

    async def stamp() -> None:
        async with db.transaction() as own:
            await own.execute(
                "SELECT warden_api_key_used($1, $2, $3)", key.kind, key.owner_id, key.key_id
            )

    tx.after_commit(stamp)


async def get_user_session(
    request: Request, credential: Annotated[Credential, Depends(get_credential)]
) -> AsyncIterator[UserContext]:
    """A transaction with only the user in context (for `/api/v1/...` self-service routes); the
    call is recorded in the user's own security log before the commit. Service keys act only
    inside their workspace."""
    async with request.app.state.db.transaction() as tx:
        principal, _ = await authenticate(request, tx, credential, None)
        request.state.actor_id = principal.user_id
        if principal.key is not None and principal.key.is_service:
            raise Forbidden("A service key works only on its workspace's routes")
        await apply_context(tx, None, principal.user_id)
        request.state.principal = principal
        await idempotency.claim(request, tx, principal.user_id, None)
        yield UserContext(tx=tx, principal=principal)
        await tx.flush()
        await idempotency.store(request, tx, request.scope.get(RESPONSE_KEY))
        event = await call_values(request, user_route=True)
        await audit_log.add_user_event(tx, {**event, "user_id": principal.user_id})


async def get_workspace_session(
    request: Request,
    slug: Annotated[str, Path(max_length=63, description="Workspace slug")],
    credential: Annotated[Credential, Depends(get_credential)],
) -> AsyncIterator[WorkspaceContext]:
    """Resolve `{slug}`, check membership, enter the workspace, yield the context.

    Outsiders (not a member, unknown or deleted workspace) get 404, never 403; members of a
    workspace that requires MFA get 403 `mfa_required` until they turn it on. After the
    handler, and before the commit, the call's audit record is added to the same transaction.
    """
    if not SLUG_RE.fullmatch(slug):
        raise NotFound()
    db: Database = request.app.state.db
    read = request.method in READ_METHODS and db.has_replica
    async with db.transaction(read=read) as tx:
        user, principal = await authenticate(request, tx, credential, slug)
        request.state.actor_id = user.user_id
        if principal is None:
            raise NotFound()
        if principal.mfa_missing:
            raise MfaRequired()
        request.state.principal = principal
        yield await enter_workspace(tx, principal, slug)
        await tx.flush()  # the handler's pending writes, before the response state is read
        await idempotency.store(request, tx, request.scope.get(RESPONSE_KEY))
        record = await call_values(request)
        record.update(workspace_id=principal.workspace_id, user_id=user.user_id)
        if read:
            await _record_on_primary(db, principal, record)
        else:
            await audit_log.add_record(tx, record)
            await audit_log.add_items(tx, record)


async def _record_on_primary(
    db: Database, principal: WorkspacePrincipal, record: dict[str, Any]
) -> None:
    """A read served by the replica still leaves its audit record, on the primary, with the
    same context, committed before the response is sent."""
    async with db.transaction() as tx:
        await apply_context(tx, principal.workspace_id, principal.user_id)
        await audit_log.add_record(tx, record)


DENIED_PREFIXES = ("/ws/", "/api/v1/platform/")
# What a refused call may store of what its caller chose: ~1 KB of path, a slug's length.
DENIED_PATH_CHARS = 1024
DENIED_SLUG_CHARS = 64


async def record_denial(request: Request, status: int, detail: str) -> None:
    """File a refused call (401/403/404) on a workspace or platform route under its actor:
    the authenticated user, or nobody. Never in the target workspace's log, so an outsider can
    write nothing into a workspace they cannot see. A failure to record is logged, never turned
    into a different answer."""
    path = getattr(request.scope.get("route"), "path", "")
    if not path.startswith(DENIED_PREFIXES):
        return
    actor = getattr(request.state, "actor_id", None)
    client = client_fields(request)
    state = request.app.state
    if not await throttle.within_rate(
        state.redis,
        state.settings,
        "denials",
        client["source_ip"],
        state.settings.denials_per_address_per_minute,
    ):
        DENIALS_NOT_STORED.inc()
        return
    slug = request.path_params.get("slug")
    values = {
        "status": status,
        "reason": redact(detail[:300]),
        "method": request.method,
        "path": redact(request_path(request.scope)[:DENIED_PATH_CHARS]),
        "slug": redact(slug[:DENIED_SLUG_CHARS] if isinstance(slug, str) else slug),
        "ip": client["source_ip"],
        "user_agent": client["user_agent"],
        "request_id": client["request_id"],
    }
    try:
        async with request.app.state.db.transaction() as tx:
            if actor is not None:
                await apply_context(tx, None, actor)
            await audit_log.add_denial(tx, values)
    except Exception as exc:  # noqa: BLE001 - the caller's answer must not change
        log_failure(log, "could not record a denial", exc)


get_user_session.claims_idempotency_keys = True  # type: ignore[attr-defined]
UserSession = Annotated[UserContext, Depends(get_user_session, scope="function")]


async def get_account_session(ctx: UserSession) -> UserContext:
    """A user session for account changes, which take the person, never an API key: keys,
    passwords, second factors, logins."""
    if ctx.principal.key is not None:
        raise Forbidden("API keys cannot manage the account (keys, password, MFA, logins)")
    return ctx


AccountSession = Annotated[UserContext, Depends(get_account_session)]
WorkspaceSession = Annotated[WorkspaceContext, Depends(get_workspace_session, scope="function")]


def require(permission: str) -> Callable[..., Coroutine[Any, Any, WorkspaceContext]]:
    """Dependency: the scoped context, for a member holding `permission` (else 403 saying
    which role, grant or revoke decided)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def dependency(request: Request, ctx: WorkspaceSession) -> WorkspaceContext:
        decision = ctx.principal.decide(permission)
        if not decision.allowed:
            raise Forbidden(f"This action needs the '{permission}' permission ({decision.reason})")
        await idempotency.claim(request, ctx.tx, ctx.user_id, ctx.principal.workspace_id)
        return ctx

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    dependency.required_permission = permission  # type: ignore[attr-defined]
    dependency.claims_idempotency_keys = True  # type: ignore[attr-defined]
    return dependency


def parse_id(value: str) -> uuid.UUID:
    """Path ids: anything that is not a UUID is simply not found."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound() from None
