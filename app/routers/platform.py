"""`/api/v1/platform/...`: installation-level, read-only, cross-workspace views.

Only users flagged as platform admins by the installation (`warden platform-admin EMAIL`). The
database enforces it: the one function behind this route refuses anyone else, and it is owned by
a SELECT-only role, so nothing here can write. The same user still needs a membership for any
`/ws/...` route.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.errors import Forbidden
from app.security.deps import UserSession

router = APIRouter(prefix="/api/v1/platform", tags=["platform"])


@router.get("/workspaces")
async def platform_workspaces(ctx: UserSession) -> dict[str, Any]:
    """Every workspace with its member and provider counts."""
    try:
        rows = await ctx.session.execute(
            text(
                "SELECT id, slug, name, created_at, member_count, provider_count "
                "FROM warden_platform_workspaces()"
            )
        )
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            raise Forbidden("Platform administrators only") from None
        raise
    return {"data": [dict(r) for r in rows.mappings()], "next_cursor": None}
