"""`/ws/{slug}/api/v1/provider-groups`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.provider import ProviderGroupCreate, ProviderGroupOut, ProviderGroupUpdate
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import providers
from app.services.providers import PROVIDER_GROUPS

router = APIRouter(
    prefix="/ws/{slug}/api/v1/provider-groups",
    tags=["provider groups"],
    route_class=AuditedRoute,
)

Reader = Annotated[WorkspaceContext, Depends(require("provider_group.read"))]
Manager = Annotated[WorkspaceContext, Depends(require("provider_group.manage"))]


@router.get(
    "",
    response_model=Page[ProviderGroupOut],
    description=PROVIDER_GROUPS.doc("List provider groups with their providers."),
)
async def list_provider_groups(
    ctx: Reader, query: Annotated[ListQuery, Depends(PROVIDER_GROUPS.list_query)]
) -> dict[str, Any]:
    return query.page(await providers.list_groups(ctx, query))


@router.post("/search/{field}", response_model=Page[ProviderGroupOut])
async def search_provider_groups(
    ctx: Reader, query: Annotated[ListQuery, Depends(PROVIDER_GROUPS.search_query)]
) -> dict[str, Any]:
    """Provider groups whose `field` is one of the JSON list of values in the body."""
    return query.page(await providers.list_groups(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_provider_groups(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(PROVIDER_GROUPS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the provider groups (filters apply)."""
    return await distinct(ctx, query)


GROUP_PROBLEMS: dict[int | str, dict[str, Any]] = {400: {"description": "Unknown provider ids"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProviderGroupOut,
    responses=GROUP_PROBLEMS,
)
async def create_provider_group(body: ProviderGroupCreate, ctx: Manager) -> dict[str, Any]:
    return await providers.create_group(ctx, body)


@router.get("/{group_id}", response_model=ProviderGroupOut)
async def get_provider_group(group_id: str, ctx: Reader) -> dict[str, Any]:
    return await providers.get_group(ctx, parse_id(group_id))


@router.patch("/{group_id}", response_model=ProviderGroupOut, responses=GROUP_PROBLEMS)
async def update_provider_group(
    group_id: str, body: ProviderGroupUpdate, ctx: Manager
) -> dict[str, Any]:
    return await providers.update_group(ctx, parse_id(group_id), body)


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider_group(group_id: str, ctx: Manager) -> Response:
    await providers.delete_group(ctx, parse_id(group_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
