"""`/ws/{slug}/api/v1/provider-groups`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.routers.pagination import Paging
from app.schemas.common import Page
from app.schemas.provider import ProviderGroupCreate, ProviderGroupOut, ProviderGroupUpdate
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import providers

router = APIRouter(prefix="/ws/{slug}/api/v1/provider-groups", tags=["provider groups"])

Reader = Annotated[WorkspaceContext, Depends(require("provider_group.read"))]
Manager = Annotated[WorkspaceContext, Depends(require("provider_group.manage"))]


@router.get("", response_model=Page[ProviderGroupOut])
async def list_provider_groups(
    ctx: Reader, page: Paging
) -> dict[str, Any]:
    return page.page(await providers.list_groups(ctx.session, page.limit, page.after))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProviderGroupOut)
async def create_provider_group(body: ProviderGroupCreate, ctx: Manager) -> dict[str, Any]:
    return await providers.create_group(ctx.session, body)


@router.get("/{group_id}", response_model=ProviderGroupOut)
async def get_provider_group(group_id: str, ctx: Reader) -> dict[str, Any]:
    return await providers.get_group(ctx.session, parse_id(group_id))


@router.patch("/{group_id}", response_model=ProviderGroupOut)
async def update_provider_group(
    group_id: str, body: ProviderGroupUpdate, ctx: Manager
) -> dict[str, Any]:
    return await providers.update_group(ctx.session, parse_id(group_id), body)


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider_group(group_id: str, ctx: Manager) -> Response:
    await providers.delete_group(ctx.session, parse_id(group_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
