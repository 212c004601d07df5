"""`/ws/{slug}/api/v1/providers`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.db.models import Provider
from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.provider import ProviderCreate, ProviderOut, ProviderUpdate
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import providers
from app.services.providers import PROVIDERS

router = APIRouter(
    prefix="/ws/{slug}/api/v1/providers", tags=["providers"], route_class=AuditedRoute
)

Reader = Annotated[WorkspaceContext, Depends(require("provider.read"))]
Listing = Annotated[ListQuery, Depends(PROVIDERS.list_query)]


@router.get("", response_model=Page[ProviderOut], description=PROVIDERS.doc("List providers."))
async def list_providers(ctx: Reader, query: Listing) -> dict[str, Any]:
    return query.page(await providers.list_providers(ctx, query))


@router.post("/search/{field}", response_model=Page[ProviderOut])
async def search_providers(
    ctx: Reader, query: Annotated[ListQuery, Depends(PROVIDERS.search_query)]
) -> dict[str, Any]:
    """Providers whose `field` is one of the JSON list of values in the body; the list's query
    parameters (filters, sort, limit, cursor) apply as well."""
    return query.page(await providers.list_providers(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_providers(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(PROVIDERS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the providers you may see (filters apply)."""
    return await distinct(ctx, query)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProviderOut)
async def create_provider(
    body: ProviderCreate,
    ctx: Annotated[WorkspaceContext, Depends(require("provider.create"))],
) -> Provider:
    return await providers.create_provider(ctx, body)


@router.get("/{provider_id}", response_model=ProviderOut)
async def get_provider(provider_id: str, ctx: Reader) -> Provider:
    return await providers.get_provider(ctx, parse_id(provider_id))


@router.patch("/{provider_id}", response_model=ProviderOut)
async def update_provider(
    provider_id: str,
    body: ProviderUpdate,
    ctx: Annotated[WorkspaceContext, Depends(require("provider.update"))],
) -> Provider:
    return await providers.update_provider(ctx, parse_id(provider_id), body)


@router.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(
    provider_id: str, ctx: Annotated[WorkspaceContext, Depends(require("provider.delete"))]
) -> Response:
    await providers.delete_provider(ctx, parse_id(provider_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
