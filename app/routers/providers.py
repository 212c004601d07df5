"""`/ws/{slug}/api/v1/providers`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.db.models import Provider
from app.routers.pagination import Paging
from app.schemas.common import Page
from app.schemas.provider import ProviderCreate, ProviderOut, ProviderUpdate
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import providers

router = APIRouter(prefix="/ws/{slug}/api/v1/providers", tags=["providers"])


@router.get("", response_model=Page[ProviderOut])
async def list_providers(
    ctx: Annotated[WorkspaceContext, Depends(require("provider.read"))],
    page: Paging,
) -> dict[str, Any]:
    return page.page(await providers.list_providers(ctx.session, page.limit, page.after))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProviderOut)
async def create_provider(
    body: ProviderCreate,
    ctx: Annotated[WorkspaceContext, Depends(require("provider.create"))],
) -> Provider:
    return await providers.create_provider(ctx.session, body)


@router.get("/{provider_id}", response_model=ProviderOut)
async def get_provider(
    provider_id: str, ctx: Annotated[WorkspaceContext, Depends(require("provider.read"))]
) -> Provider:
    return await providers.get_provider(ctx.session, parse_id(provider_id))


@router.patch("/{provider_id}", response_model=ProviderOut)
async def update_provider(
    provider_id: str,
    body: ProviderUpdate,
    ctx: Annotated[WorkspaceContext, Depends(require("provider.update"))],
) -> Provider:
    return await providers.update_provider(ctx.session, parse_id(provider_id), body)


@router.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(
    provider_id: str, ctx: Annotated[WorkspaceContext, Depends(require("provider.delete"))]
) -> Response:
    await providers.delete_provider(ctx.session, parse_id(provider_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
