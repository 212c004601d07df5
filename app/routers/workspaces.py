"""`/api/v1/workspaces`: the caller's workspaces (cross-workspace only through definer lookups)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from app.db.models import Task
from app.schemas.common import Page
from app.schemas.task import TaskOut
from app.schemas.workspace import WorkspaceCreate, WorkspaceOut
from app.security.audit import AuditedRoute
from app.security.deps import UserSession, require
from app.security.principal import WorkspaceContext
from app.services import workspaces

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspaces"], route_class=AuditedRoute)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkspaceOut,
    responses={409: {"description": "The slug is taken"}},
)
async def create_workspace(body: WorkspaceCreate, ctx: UserSession) -> dict[str, Any]:
    """Create a workspace; the caller becomes its `owner`."""
    return await workspaces.create_workspace(ctx, body.slug, body.name)


@router.get("", response_model=Page[WorkspaceOut])
async def list_workspaces(ctx: UserSession) -> dict[str, Any]:
    return {"data": await workspaces.list_workspaces(ctx), "next_cursor": None}


@router.delete(
    "/{slug}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskOut,
    responses={202: {"description": "The deletion task (state `pending`)"}},
)
async def delete_workspace(
    ctx: Annotated[WorkspaceContext, Depends(require("workspace.delete"))],
) -> Task:
    """Delete the workspace (owners). It disappears at once — every route, for every member,
    answers 404 from now on — and a background job removes its rows in batches, then the
    workspace itself, after which the slug can be used again. No `Content-Location`: the
    task lives in the workspace, so it is gone with it."""
    return await workspaces.request_deletion(ctx)
