"""`/ws/{slug}/api/v1/members`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.query import DistinctQuery, ListQuery
from app.schemas.common import DistinctPage, Page
from app.schemas.role import MemberUpdate
from app.schemas.workspace import MemberCreate, MemberOut
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import members
from app.services.members import MEMBERS

router = APIRouter(prefix="/ws/{slug}/api/v1/members", tags=["members"], route_class=AuditedRoute)

Reader = Annotated[WorkspaceContext, Depends(require("member.read"))]
Manager = Annotated[WorkspaceContext, Depends(require("member.manage"))]


@router.get("", response_model=Page[MemberOut], description=MEMBERS.doc("List members."))
async def list_members(
    ctx: Reader, query: Annotated[ListQuery, Depends(MEMBERS.list_query)]
) -> dict[str, Any]:
    return query.page(await members.list_members(ctx, query))


@router.post("/search/{field}", response_model=Page[MemberOut])
async def search_members(
    ctx: Reader, query: Annotated[ListQuery, Depends(MEMBERS.search_query)]
) -> dict[str, Any]:
    """Members whose `field` is one of the JSON list of values in the body."""
    return query.page(await members.list_members(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_members(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(MEMBERS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the members (filters apply)."""
    return await members.distinct_members(ctx, query)


ROLE_UNKNOWN: dict[int | str, dict[str, Any]] = {
    400: {"description": "Neither a built-in role nor a custom role of the workspace"}
}


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=MemberOut, responses=ROLE_UNKNOWN
)
async def add_member(body: MemberCreate, ctx: Manager) -> dict[str, Any]:
    """Add an existing user by email with a built-in role or a custom role id. Nobody can
    grant more than they hold (so only owners make owners)."""
    return await members.add_member(ctx, body.email, body.role)


@router.get("/{user_id}", response_model=MemberOut)
async def get_member(user_id: str, ctx: Reader) -> dict[str, Any]:
    return await members.get_member(ctx, parse_id(user_id))


@router.patch("/{user_id}", response_model=MemberOut, responses=ROLE_UNKNOWN)
async def update_member(user_id: str, body: MemberUpdate, ctx: Manager) -> dict[str, Any]:
    """Change a member's role and/or per-workspace attributes (used by row grants). The last
    owner cannot be demoted; only owners change owners."""
    return await members.update_member(ctx, parse_id(user_id), body)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(user_id: str, ctx: Manager) -> Response:
    """Remove a member; their next request to this workspace gets 404."""
    await members.remove_member(ctx, parse_id(user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
