"""`/api/v1/me`, `/api/v1/me/has-permission`, `/api/v1/permissions`: explain access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from app.db.models import AuditDenial, User, UserEvent
from app.errors import BadRequest, Forbidden
from app.query import ListQuery
from app.schemas.audit import DenialOut, UserEventOut
from app.schemas.common import Page
from app.schemas.role import HasPermissionIn, HasPermissionOut
from app.security.audit import AuditedRoute
from app.security.deps import UserSession, load_principal
from app.security.permissions import BUILTIN_ROLES, PERMISSIONS, RoleSpec
from app.security.route_index import permission_for
from app.services import audit, workspaces
from app.services.audit import DENIALS, USER_EVENTS

router = APIRouter(prefix="/api/v1", tags=["me"], route_class=AuditedRoute)


def _membership(ws: dict[str, Any]) -> dict[str, Any]:
    spec = RoleSpec(
        ws["role"],
        ws["custom_role_name"],
        ws["inherits_from"],
        tuple(ws["grants"] or ()),
        tuple(ws["revokes"] or ()),
    )
    return {
        "workspace": ws["slug"],
        "workspace_id": ws["id"],
        "role": ws["role"],
        "custom_role": (
            {
                "id": ws["custom_role_id"],
                "name": ws["custom_role_name"],
                "inherits_from": ws["inherits_from"],
            }
            if ws["custom_role_id"]
            else None
        ),
        "permissions": sorted(spec.permissions),
    }


@router.get("/me")
async def me(ctx: UserSession) -> dict[str, Any]:
    """The caller, their memberships and effective permissions per workspace."""
    user = (
        await ctx.session.execute(select(User).where(User.id == ctx.principal.user_id))
    ).scalar_one()
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "attributes": user.attributes,
        "is_platform_admin": user.is_platform_admin,
        "created_at": user.created_at,
        "memberships": [_membership(ws) for ws in await workspaces.list_workspaces(ctx)],
    }


@router.post(
    "/me/has-permission",
    response_model=HasPermissionOut,
    responses={
        400: {"description": "Neither a permission, nor a method and path of the workspace"}
    },
)
async def has_permission(
    body: HasPermissionIn, ctx: UserSession, request: Request
) -> dict[str, Any]:
    """May I do this? Give `{workspace, permission}` or `{workspace, method, path}`; the answer
    says which role, grant or revoke decided."""
    if (body.permission is None) == (body.method is None or body.path is None):
        raise BadRequest("Give either 'permission', or both 'method' and 'path'")
    permission = body.permission
    if permission is None:
        assert body.method is not None and body.path is not None
        path = body.path.split("?", 1)[0]
        if not path.startswith(f"/ws/{body.workspace}/"):
            raise BadRequest(f"'path' must be a route of workspace '{body.workspace}'")
        entry = permission_for(request.app, body.method, path)
        if entry is None:
            return {"allowed": False, "permission": None, "reason": "no such route"}
        permission = entry.permission
        key = ctx.principal.key
        if key is not None and not key.permits(body.method, path):
            return {
                "allowed": False,
                "permission": permission,
                "reason": key.endpoint_refusal(body.method.upper(), path),
            }
        if permission is None:
            return {"allowed": True, "permission": None, "reason": "the route needs no permission"}
    # The very path a request to that workspace takes: the same lookup, the same principal,
    # the same resolver.
    try:
        # In a transaction of its own, as a request to that workspace begins (this one may have
        # written its idempotency key: on Citus a definer function cannot read that shard then).
        async with request.app.state.db.transaction() as lookup:
            principal = await load_principal(lookup, ctx.principal, body.workspace)
    except Forbidden as refused:  # an API key bound to another workspace
        return {"allowed": False, "permission": permission, "reason": refused.detail}
    if principal is None:
        return {
            "allowed": False,
            "permission": permission,
            "reason": "you are not a member of this workspace",
        }
    decision = principal.decide(permission)
    return {"allowed": decision.allowed, "permission": permission, "reason": decision.reason}


@router.get(
    "/me/events",
    response_model=Page[UserEventOut],
    description=USER_EVENTS.doc(
        "Your own security log: logins, token refreshes, logouts, password changes and every "
        "call you made outside a workspace."
    ),
)
async def list_my_events(
    ctx: UserSession, query: Annotated[ListQuery, Depends(USER_EVENTS.list_query)]
) -> dict[str, Any]:
    rows = await audit.list_user_rows(ctx, query, UserEvent)
    return query.page(rows)


@router.get(
    "/me/denials",
    response_model=Page[DenialOut],
    description=DENIALS.doc(
        "Your own refused calls (401/403/404) on workspace and platform routes. They are kept "
        "here, not in the workspace you tried, so nobody can write into a workspace's log "
        "without being let in."
    ),
)
async def list_my_denials(
    ctx: UserSession, query: Annotated[ListQuery, Depends(DENIALS.list_query)]
) -> dict[str, Any]:
    rows = await audit.list_user_rows(ctx, query, AuditDenial)
    return query.page(rows)


@router.get("/permissions", tags=["permissions"])
async def list_permissions() -> dict[str, Any]:
    """Every permission key and the built-in roles that hold it."""
    return {
        "permissions": [
            {
                "key": key,
                "description": text,
                "roles": [r for r, held in BUILTIN_ROLES.items() if key in held],
            }
            for key, text in PERMISSIONS.items()
        ]
    }
