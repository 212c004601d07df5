"""`/api/v1/workspaces`: the caller's workspaces (cross-workspace only through definer lookups)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from app.schemas.common import Page
from app.schemas.workspace import WorkspaceCreate, WorkspaceOut
from app.security.audit import AuditedRoute
from app.security.deps import UserSession
from app.services import workspaces

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspaces"], route_class=AuditedRoute)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WorkspaceOut)
async def create_workspace(body: WorkspaceCreate, ctx: UserSession) -> dict[str, Any]:
    """Create a workspace; the caller becomes its `owner`."""
    return await workspaces.create_workspace(ctx.session, body.slug, body.name)


@router.get("", response_model=Page[WorkspaceOut])
async def list_workspaces(ctx: UserSession) -> dict[str, Any]:
    return {"data": await workspaces.list_workspaces(ctx.session), "next_cursor": None}
