"""`/ws/{slug}/api/v1/idp-groups`: which IdP groups give which role in this workspace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.identity import IdpGroupCreate, IdpGroupOut
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import idp_groups
from app.services.idp_groups import IDP_GROUPS

router = APIRouter(
    prefix="/ws/{slug}/api/v1/idp-groups", tags=["idp groups"], route_class=AuditedRoute
)

Manager = Annotated[WorkspaceContext, Depends(require("member.manage"))]


@router.get(
    "",
    response_model=Page[IdpGroupOut],
    description=IDP_GROUPS.doc("List the IdP group mappings."),
)
async def list_idp_groups(
    ctx: Manager, query: Annotated[ListQuery, Depends(IDP_GROUPS.list_query)]
) -> dict[str, Any]:
    return query.page(await idp_groups.list_mappings(ctx, query))


@router.post("/search/{field}", response_model=Page[IdpGroupOut])
async def search_idp_groups(
    ctx: Manager, query: Annotated[ListQuery, Depends(IDP_GROUPS.search_query)]
) -> dict[str, Any]:
    """Mappings whose `field` is one of the JSON list of values in the body."""
    return query.page(await idp_groups.list_mappings(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_idp_groups(
    ctx: Manager, query: Annotated[DistinctQuery, Depends(IDP_GROUPS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the mappings (filters apply)."""
    return await distinct(ctx, query)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=IdpGroupOut)
async def create_idp_group(body: IdpGroupCreate, ctx: Manager) -> dict[str, Any]:
    """Members of IdP group `group` get `role` (a built-in role or a custom role id) here at
    their next sign-in. Nobody maps a group to more than they hold themselves."""
    return await idp_groups.create_mapping(ctx, body)


@router.get("/{mapping_id}", response_model=IdpGroupOut)
async def get_idp_group(mapping_id: str, ctx: Manager) -> dict[str, Any]:
    return await idp_groups.get_mapping(ctx, parse_id(mapping_id))


@router.delete("/{mapping_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_idp_group(mapping_id: str, ctx: Manager) -> Response:
    """Members who got their role from this group lose it at their next sign-in."""
    await idp_groups.delete_mapping(ctx, parse_id(mapping_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
