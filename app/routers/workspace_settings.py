"""`/ws/{slug}/api/v1/settings`: the workspace's own settings (name, audit retention, MFA)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.db.models import Workspace
from app.schemas.audit import WorkspaceSettingsOut, WorkspaceSettingsUpdate
from app.security.audit import AuditedRoute
from app.security.deps import require
from app.security.principal import WorkspaceContext
from app.services import workspaces

router = APIRouter(prefix="/ws/{slug}/api/v1/settings", tags=["settings"], route_class=AuditedRoute)


@router.get("", response_model=WorkspaceSettingsOut)
async def get_settings(
    ctx: Annotated[WorkspaceContext, Depends(require("member.read"))],
) -> Workspace:
    return await workspaces.get_settings(ctx)


@router.patch("", response_model=WorkspaceSettingsOut)
async def update_settings(
    body: WorkspaceSettingsUpdate,
    ctx: Annotated[WorkspaceContext, Depends(require("workspace.update"))],
) -> Workspace:
    """`audit_retention_days`: audit records older than this are removed by the retention job
    (the cut is recorded, so the chain still verifies); null keeps them forever.
    `require_mfa`: members without a second factor get 403 `mfa_required` on every route of
    the workspace (turn on your own first)."""
    return await workspaces.update_settings(ctx, body)
