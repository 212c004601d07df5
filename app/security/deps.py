"""Request dependencies: authentication, the scoped session, permission checks.

Invariant: `get_workspace_session` is the only HTTP code path that sets the tenant context. It
re-reads the session family and the membership on every request (nothing is trusted from the
token but identity), and its transaction commits before the response is sent (the dependency is
function-scoped), so a failed commit can never be reported as success. It is also the audit
hook: after the handler, the call's record joins the same transaction (`get_user_session` does
the same for the caller's own log), and `record_denial` files refused calls under their actor.
Jobs the transaction wrote to the outbox are relayed to Redis after that commit, never before.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from app.config import Settings
from app.db.base import new_id
from app.db.session import Database
from app.db.tenant import Visibility, apply_context
from app.db.transaction import Transaction
from app.errors import Forbidden, NotFound, Unauthorized
from app.security.audit import call_values, client_fields, redact, request_path
from app.security.fields import current_rules, rules_for
from app.security.grants import principal_filters
from app.security.permissions import PERMISSIONS, effective_permissions
from app.security.principal import (
    UserContext,
    UserPrincipal,
    WorkspaceContext,
    WorkspacePrincipal,
)
from app.security.tokens import AccessClaims, decode_access_token
from app.services import audit
from app.services.outbox import relay_committed

log = logging.getLogger("warden.audit")

SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

_CONTEXT_SQL = (
    "SELECT authenticated, workspace_id, role, custom_role_id, custom_role_name, inherits_from, "
    "grants, revokes, visible_provider_ids, attributes "
    "FROM warden_request_context($1, $2, $3)"
)


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_claims(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> AccessClaims:
    if not token:
        raise Unauthorized()
    return decode_access_token(request.app.state.settings, token)


async def _resolve(tx: Transaction, claims: AccessClaims, slug: str | None) -> Any:
    """The request context, read fresh: session family valid, membership, role, visibility
    (just before the transaction opens, with the settings it decides)."""
    row = await tx.lookup(_CONTEXT_SQL, claims.user_id, claims.family_id, slug)
    if row is None or not row["authenticated"]:
        raise Unauthorized()
    return row


async def get_user_session(
    request: Request, claims: Annotated[AccessClaims, Depends(get_claims)]
) -> AsyncIterator[UserContext]:
    """A transaction with only the user in context (for `/api/v1/...` self-service routes); the
    call is recorded in the user's own security log before the commit."""
    async with request.app.state.db.transaction() as tx:
        await _resolve(tx, claims, None)
        request.state.actor_id = claims.user_id
        await apply_context(tx, None, claims.user_id)
        principal = UserPrincipal(user_id=claims.user_id, family_id=claims.family_id)
        request.state.principal = principal
        yield UserContext(tx=tx, principal=principal)
        event = await call_values(request, user_route=True)
        await audit.add_user_event(tx.session, {**event, "user_id": claims.user_id})


def _principal(claims: AccessClaims, slug: str, row: Any) -> WorkspacePrincipal:
    grants, revokes = tuple(row["grants"] or ()), tuple(row["revokes"] or ())
    attributes = row["attributes"]
    return WorkspacePrincipal(
        user_id=claims.user_id,
        family_id=claims.family_id,
        workspace_id=row["workspace_id"],
        slug=slug,
        role=row["role"],
        custom_role_id=row["custom_role_id"],
        custom_role_name=row["custom_role_name"],
        inherits_from=row["inherits_from"],
        grants=grants,
        revokes=revokes,
        attributes=dict(attributes) if attributes else {},
        permissions=effective_permissions(row["role"], row["inherits_from"], grants, revokes),
    )


async def get_workspace_session(
    request: Request,
    slug: Annotated[str, Path(max_length=63, description="Workspace slug")],
    claims: Annotated[AccessClaims, Depends(get_claims)],
) -> AsyncIterator[WorkspaceContext]:
    """Resolve `{slug}`, check membership, set the tenant context, yield session + principal.

    Outsiders (not a member, unknown or deleted workspace) get 404, never 403. After the
    handler, and before the commit, the call's audit record is added to the same transaction.
    """
    if not SLUG_RE.fullmatch(slug):
        raise NotFound()
    db: Database = request.app.state.db
    read = request.method in READ_METHODS and db.has_replica
    async with db.transaction(read=read) as tx:
        row = await _resolve(tx, claims, slug)
        request.state.actor_id = claims.user_id
        if row["workspace_id"] is None:
            raise NotFound()
        principal = _principal(claims, slug, row)
        visibility = Visibility(
            unlimited=principal.can("unlimited_visibility"),
            provider_ids=tuple(row["visible_provider_ids"] or ()),
        )
        await apply_context(tx, principal.workspace_id, claims.user_id, visibility)
        tx.info["row_filter_key"], tx.info["row_filters"] = principal_filters(
            [principal.base_role], principal.attributes, all_providers=visibility.unlimited
        )
        current_rules.set(rules_for([principal.base_role]))
        request.state.principal = principal
        yield WorkspaceContext(tx=tx, principal=principal)
        await tx.flush()  # the handler's pending writes, before the response state is read
        record = await call_values(request)
        record.update(workspace_id=principal.workspace_id, user_id=claims.user_id)
        if read:
            await _record_on_primary(db, principal.workspace_id, claims.user_id, record)
        else:
            await audit.add_record(tx, record)

    # Committed: now (and only now) hand the jobs this transaction wrote to Redis.
    await relay_committed(request.app.state, tx.session_info)


async def _record_on_primary(
    db: Database, workspace_id: uuid.UUID, user_id: uuid.UUID, record: dict[str, Any]
) -> None:
    """A read served by the replica still leaves its audit record, on the primary, with the
    same context, committed before the response is sent."""
    async with db.transaction() as tx:
        await apply_context(tx, workspace_id, user_id)
        await audit.add_record(tx, record)


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
            await audit.add_denial(tx, values)
    except Exception:  # noqa: BLE001 - the caller's answer must not change
        log.exception("could not record a denial")


UserSession = Annotated[UserContext, Depends(get_user_session, scope="function")]
WorkspaceSession = Annotated[WorkspaceContext, Depends(get_workspace_session, scope="function")]


def require(permission: str) -> Callable[..., Coroutine[Any, Any, WorkspaceContext]]:
    """Dependency: the scoped session, for a member holding `permission` (else 403)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def dependency(ctx: WorkspaceSession) -> WorkspaceContext:
        if not ctx.principal.can(permission):
            raise Forbidden(f"This action needs the '{permission}' permission")
        return ctx

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    dependency.required_permission = permission  # type: ignore[attr-defined]
    return dependency


def parse_id(value: str) -> uuid.UUID:
    """Path ids: anything that is not a UUID is simply not found."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound() from None
