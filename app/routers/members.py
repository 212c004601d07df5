"""`/ws/{slug}/api/v1/members`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.schemas.common import Page
from app.schemas.role import MemberUpdate
from app.schemas.workspace import MemberCreate, MemberOut
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import members

router = APIRouter(prefix="/ws/{slug}/api/v1/members", tags=["members"])

Reader = Annotated[WorkspaceContext, Depends(require("member.read"))]
Manager = Annotated[WorkspaceContext, Depends(require("member.manage"))]


@router.get("", response_model=Page[MemberOut])
async def list_members(ctx: Reader) -> dict[str, Any]:
    return {"data": await members.list_members(ctx.session), "next_cursor": None}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemberOut)
async def add_member(body: MemberCreate, ctx: Manager) -> dict[str, Any]:
    """Add an existing user by email with a built-in role or a custom role id. Nobody can
    grant more than they hold (so only owners make owners)."""
    return await members.add_member(ctx.session, ctx.principal, body.email, body.role)


@router.get("/{user_id}", response_model=MemberOut)
async def get_member(user_id: str, ctx: Reader) -> dict[str, Any]:
    return await members.get_member(ctx.session, parse_id(user_id))


@router.patch("/{user_id}", response_model=MemberOut)
async def update_member(user_id: str, body: MemberUpdate, ctx: Manager) -> dict[str, Any]:
    """Change a member's role and/or per-workspace attributes (used by row grants). The last
    owner cannot be demoted; only owners change owners."""
    return await members.update_member(ctx.session, ctx.principal, parse_id(user_id), body)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(user_id: str, ctx: Manager) -> Response:
    """Remove a member; their next request to this workspace gets 404."""
    await members.remove_member(ctx.session, ctx.principal, parse_id(user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
