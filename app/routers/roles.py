"""`/ws/{slug}/api/v1/roles`: custom roles (owner only, via `role.manage`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.schemas.common import Page
from app.schemas.role import CustomRoleCreate, CustomRoleOut, CustomRoleUpdate
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import roles

router = APIRouter(prefix="/ws/{slug}/api/v1/roles", tags=["roles"])

Reader = Annotated[WorkspaceContext, Depends(require("member.read"))]
Manager = Annotated[WorkspaceContext, Depends(require("role.manage"))]


@router.get("", response_model=Page[CustomRoleOut])
async def list_roles(ctx: Reader) -> dict[str, Any]:
    return {"data": await roles.list_roles(ctx.session), "next_cursor": None}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CustomRoleOut)
async def create_role(body: CustomRoleCreate, ctx: Manager) -> dict[str, Any]:
    """A custom role starts from `inherits_from` (a built-in role), adds `grants`, removes
    `revokes` (revokes beat grants). Unknown permission keys are refused."""
    return await roles.create_role(ctx.session, body)


@router.get("/{role_id}", response_model=CustomRoleOut)
async def get_role(role_id: str, ctx: Reader) -> dict[str, Any]:
    return await roles.role_out(ctx.session, await roles.get_role(ctx.session, parse_id(role_id)))


@router.patch("/{role_id}", response_model=CustomRoleOut)
async def update_role(role_id: str, body: CustomRoleUpdate, ctx: Manager) -> dict[str, Any]:
    """Changes apply to every holder from their next request."""
    return await roles.update_role(ctx.session, parse_id(role_id), body)


@router.delete("/{role_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_role(role_id: str, ctx: Manager) -> Response:
    await roles.delete_role(ctx.session, parse_id(role_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
