"""Request dependencies: authentication, the scoped transaction, permission checks.

Invariant: `get_workspace_session` is the only HTTP code path that enters a workspace. It
re-reads the session family and the membership on every request (nothing is trusted from the
token but identity), builds the principal and enters the workspace with the same functions jobs
use, and its transaction commits before the response is sent (the dependency is
function-scoped), so a failed commit can never be reported as success. It is also the audit
hook: after the handler, the call's record joins the same transaction (`get_user_session` does
the same for the caller's own log), and `record_denial` files refused calls under their actor.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from app.db import audit as audit_log
from app.db.base import new_id
from app.db.session import Database
from app.db.tenant import apply_context
from app.db.transaction import Transaction
from app.errors import Forbidden, NotFound, Unauthorized
from app.security import idempotency
from app.security.audit import RESPONSE_KEY, call_values, client_fields, redact, request_path
from app.security.permissions import PERMISSIONS
from app.security.principal import (
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

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_claims(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> AccessClaims:
    if not token:
        raise Unauthorized()
    return decode_access_token(request.app.state.settings, token)


async def load_principal(
    tx: Transaction, user: UserPrincipal, slug: str | None
) -> WorkspacePrincipal | None:
    """The caller's principal in workspace `slug`, read fresh (session family valid, active
    member, role, visibility, attributes); None when they are not a member. Raises
    `Unauthorized` when the login is no longer valid. The same path for every request and for
    `/me/has-permission`."""
    args = (user.user_id, user.family_id, slug)
    if tx.driver.is_in_transaction():
        rows = await tx.fetch(REQUEST_CONTEXT_SQL, *args)
        row = rows[0] if rows else None
    else:
        row = await tx.lookup(REQUEST_CONTEXT_SQL, *args)
    if row is None or not row["authenticated"]:
        raise Unauthorized()
    if row["workspace_id"] is None:
        return None
    return principal_from_row(user.user_id, row["workspace_id"], row)


async def get_user_session(
    request: Request, claims: Annotated[AccessClaims, Depends(get_claims)]
) -> AsyncIterator[UserContext]:
    """A transaction with only the user in context (for `/api/v1/...` self-service routes); the
    call is recorded in the user's own security log before the commit."""
    principal = UserPrincipal(user_id=claims.user_id, family_id=claims.family_id)
    async with request.app.state.db.transaction() as tx:
        await load_principal(tx, principal, None)
        request.state.actor_id = claims.user_id
        await apply_context(tx, None, claims.user_id)
        request.state.principal = principal
        await idempotency.claim(request, tx, claims.user_id, None)
        yield UserContext(tx=tx, principal=principal)
        await tx.flush()
        await idempotency.store(request, tx, request.scope.get(RESPONSE_KEY))
        event = await call_values(request, user_route=True)
        await audit_log.add_user_event(tx, {**event, "user_id": claims.user_id})


async def get_workspace_session(
    request: Request,
    slug: Annotated[str, Path(max_length=63, description="Workspace slug")],
    claims: Annotated[AccessClaims, Depends(get_claims)],
) -> AsyncIterator[WorkspaceContext]:
    """Resolve `{slug}`, check membership, enter the workspace, yield the context.

    Outsiders (not a member, unknown or deleted workspace) get 404, never 403. After the
    handler, and before the commit, the call's audit record is added to the same transaction.
    """
    if not SLUG_RE.fullmatch(slug):
        raise NotFound()
    db: Database = request.app.state.db
    read = request.method in READ_METHODS and db.has_replica
    user = UserPrincipal(user_id=claims.user_id, family_id=claims.family_id)
    async with db.transaction(read=read) as tx:
        principal = await load_principal(tx, user, slug)
        request.state.actor_id = claims.user_id
        if principal is None:
            raise NotFound()
        request.state.principal = principal
        yield await enter_workspace(tx, principal, slug)
        await tx.flush()  # the handler's pending writes, before the response state is read
        await idempotency.store(request, tx, request.scope.get(RESPONSE_KEY))
        record = await call_values(request)
        record.update(workspace_id=principal.workspace_id, user_id=claims.user_id)
        if read:
            await _record_on_primary(db, principal, record)
        else:
            await audit_log.add_record(tx, record)


async def _record_on_primary(
    db: Database, principal: WorkspacePrincipal, record: dict[str, Any]
) -> None:
    """A read served by the replica still leaves its audit record, on the primary, with the
    same context, committed before the response is sent."""
    async with db.transaction() as tx:
        await apply_context(tx, principal.workspace_id, principal.user_id)
        await audit_log.add_record(tx, record)


DENIED_PREFIXES = ("/ws/", "/api/v1/platform/")


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
    values = {
        "id": new_id(),
        "status": status,
        "reason": redact(detail[:300]),
        "method": request.method,
        "path": redact(request_path(request.scope)),
        "slug": redact(request.path_params.get("slug")),
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
