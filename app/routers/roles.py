"""`/ws/{slug}/api/v1/roles`: custom roles (owner only, via `role.manage`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.role import CustomRoleCreate, CustomRoleOut, CustomRoleUpdate
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import roles
from app.services.roles import ROLES

router = APIRouter(prefix="/ws/{slug}/api/v1/roles", tags=["roles"], route_class=AuditedRoute)

Reader = Annotated[WorkspaceContext, Depends(require("member.read"))]
Manager = Annotated[WorkspaceContext, Depends(require("role.manage"))]


@router.get("", response_model=Page[CustomRoleOut], description=ROLES.doc("List custom roles."))
async def list_roles(
    ctx: Reader, query: Annotated[ListQuery, Depends(ROLES.list_query)]
) -> dict[str, Any]:
    return query.page(await roles.list_roles(ctx, query))


@router.post("/search/{field}", response_model=Page[CustomRoleOut])
async def search_roles(
    ctx: Reader, query: Annotated[ListQuery, Depends(ROLES.search_query)]
) -> dict[str, Any]:
    """Custom roles whose `field` is one of the JSON list of values in the body."""
    return query.page(await roles.list_roles(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_roles(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(ROLES.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the custom roles (filters apply)."""
    return await distinct(ctx, query)


ROLE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "An unknown built-in role, permission key or provider group"}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CustomRoleOut,
    responses=ROLE_PROBLEMS,
)
async def create_role(body: CustomRoleCreate, ctx: Manager) -> dict[str, Any]:
    """A custom role starts from `inherits_from` (a built-in role), adds `grants`, removes
    `revokes` (revokes beat grants). Unknown permission keys are refused."""
    return await roles.create_role(ctx, body)


@router.get("/{role_id}", response_model=CustomRoleOut)
async def get_role(role_id: str, ctx: Reader) -> dict[str, Any]:
    return await roles.role_out(ctx, await roles.get_role(ctx, parse_id(role_id)))


@router.patch("/{role_id}", response_model=CustomRoleOut, responses=ROLE_PROBLEMS)
async def update_role(role_id: str, body: CustomRoleUpdate, ctx: Manager) -> dict[str, Any]:
    """Changes apply to every holder from their next request."""
    return await roles.update_role(ctx, parse_id(role_id), body)


@router.delete("/{role_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_role(role_id: str, ctx: Manager) -> Response:
    await roles.delete_role(ctx, parse_id(role_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
