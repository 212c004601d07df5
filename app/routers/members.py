"""`/ws/{slug}/api/v1/members`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from app.errors import Forbidden
from app.schemas.common import Page
from app.schemas.workspace import MemberCreate, MemberOut
from app.security.deps import require
from app.security.principal import WorkspaceContext
from app.services import workspaces

router = APIRouter(prefix="/ws/{slug}/api/v1/members", tags=["members"])


@router.get("", response_model=Page[MemberOut])
async def list_members(
    ctx: Annotated[WorkspaceContext, Depends(require("member.read"))],
) -> dict[str, Any]:
    return {"data": await workspaces.list_members(ctx.session), "next_cursor": None}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemberOut)
async def add_member(
    body: MemberCreate,
    ctx: Annotated[WorkspaceContext, Depends(require("member.manage"))],
) -> dict[str, Any]:
    """Add an existing user by email with a built-in role."""
    if body.role == "platform_admin":
        raise Forbidden("platform_admin is granted by the installation, not by a workspace")
    if body.role == "owner" and ctx.principal.role != "owner":
        raise Forbidden("Only an owner can make another owner")
    return await workspaces.add_member(ctx.session, body.email, body.role)
