"""`/ws/{slug}/api/v1/invitations` (managing them, `member.manage`) and
`/api/v1/invitations/{token}/accept` (the invited user joining)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status

from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.change_management import (
    AcceptedOut,
    InvitationCreate,
    InvitationCreatedOut,
    InvitationOut,
)
from app.schemas.common import DistinctPage, Page
from app.security.audit import AuditedRoute
from app.security.deps import UserSession, parse_id, require
from app.security.principal import WorkspaceContext
from app.services import invitations
from app.services.invitations import INVITATIONS

router = APIRouter(tags=["invitations"], route_class=AuditedRoute)

BASE = "/ws/{slug}/api/v1/invitations"
Manager = Annotated[WorkspaceContext, Depends(require("member.manage"))]
CREATE: dict[int | str, dict[str, Any]] = {
    400: {"description": "Neither a built-in role nor a custom role of the workspace"},
    409: {"description": "Already a member, or already invited (pending)"},
}
ACCEPT: dict[int | str, dict[str, Any]] = {
    404: {"description": "An unknown token, or one for another email address"},
    409: {"description": "Used, revoked or expired (`state` says which), or already a member"},
}


@router.get(
    BASE,
    response_model=Page[InvitationOut],
    description=INVITATIONS.doc("List invitations, newest first. E.g. `?state=pending`."),
)
async def list_invitations(
    ctx: Manager, query: Annotated[ListQuery, Depends(INVITATIONS.list_query)]
) -> dict[str, Any]:
    return query.page(await invitations.list_invitations(ctx, query))


@router.post(BASE + "/search/{field}", response_model=Page[InvitationOut])
async def search_invitations(
    ctx: Manager, query: Annotated[ListQuery, Depends(INVITATIONS.search_query)]
) -> dict[str, Any]:
    """Invitations whose `field` is one of the JSON list of values in the body."""
    return query.page(await invitations.list_invitations(ctx, query))


@router.get(BASE + "/distinct/{field}", response_model=DistinctPage)
async def distinct_invitations(
    ctx: Manager, query: Annotated[DistinctQuery, Depends(INVITATIONS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the invitations."""
    return await distinct(ctx, query)


@router.post(
    BASE,
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationCreatedOut,
    responses=CREATE,
)
async def create_invitation(
    body: InvitationCreate, ctx: Manager, request: Request
) -> dict[str, Any]:
    """Invite an email address with a built-in role or a custom role id (never beyond your own
    access). The answer carries the one-time `token`, shown only here; it expires after
    `WARDEN_INVITATION_TTL_HOURS`. An invited user who has an account is notified."""
    ttl = request.app.state.settings.invitation_ttl_hours
    return await invitations.create_invitation(ctx, body, ttl)


@router.get(BASE + "/{invitation_id}", response_model=InvitationOut)
async def get_invitation(invitation_id: str, ctx: Manager) -> dict[str, Any]:
    return await invitations.get_invitation(ctx, parse_id(invitation_id))


@router.delete(
    BASE + "/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "Already used or revoked"}},
)
async def revoke_invitation(invitation_id: str, ctx: Manager) -> Response:
    """Revoke an invitation: its token stops working (409 if it was already used)."""
    await invitations.revoke_invitation(ctx, parse_id(invitation_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/v1/invitations/{token}/accept", response_model=AcceptedOut, responses=ACCEPT)
async def accept_invitation(
    token: Annotated[str, Path(max_length=200, description="The invitation's token")],
    ctx: UserSession,
) -> dict[str, Any]:
    """Join the workspace you were invited to. You must be signed in with the invited email
    address; someone else's or an unknown token is 404, a used, revoked or expired one 409."""
    return await invitations.accept_invitation(ctx, token)
