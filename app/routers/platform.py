"""`/api/v1/platform/...`: installation-level, read-only, cross-workspace views.

Only users flagged as platform admins by the installation (`warden platform-admin EMAIL`). The
database enforces it: each function behind these routes refuses anyone else, and they are owned
by a SELECT-only role, so nothing here can write. The same user still needs a membership for any
`/ws/...` route.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.errors import Forbidden
from app.security.audit import AuditedRoute
from app.security.deps import UserSession

router = APIRouter(
    prefix="/api/v1/platform",
    tags=["platform"],
    route_class=AuditedRoute,
    responses={403: {"description": "Platform administrators only"}},
)


async def _rows(ctx: UserSession, sql: str, **params: Any) -> list[dict[str, Any]]:
    try:
        rows = await ctx.session.execute(text(sql), params)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            raise Forbidden("Platform administrators only") from None
        raise
    return [dict(r) for r in rows.mappings()]


@router.get("/workspaces")
async def platform_workspaces(ctx: UserSession) -> dict[str, Any]:
    """Every workspace with its member and provider counts."""
    rows = await _rows(
        ctx,
        "SELECT id, slug, name, created_at, member_count, provider_count "
        "FROM warden_platform_workspaces()",
    )
    return {"data": rows, "next_cursor": None}


@router.get("/denials")
async def platform_denials(
    ctx: UserSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[uuid.UUID | None, Query(description="Previous page's next_cursor")] = None,
) -> dict[str, Any]:
    """Every refused call on workspace and platform routes, newest first, including those of
    callers who could not be authenticated (`user_id` null)."""
    rows = await _rows(
        ctx,
        "SELECT id, created_at, user_id, status, reason, method, path, workspace_slug, "
        "source_ip, user_agent, request_id FROM warden_platform_denials(:limit, :before)",
        limit=limit,
        before=cursor,
    )
    next_cursor = str(rows[-1]["id"]) if len(rows) == limit else None
    return {"data": rows, "next_cursor": next_cursor}
