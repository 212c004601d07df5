"""`/ws/{slug}/api/v1/changes`: change requests, their transitions and approvals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.change_management import (
    ApproveIn,
    BulkApproveIn,
    BulkApproveOut,
    ChangeCreate,
    ChangeOut,
    ChangeSummaryOut,
    ChangeUpdate,
    ImplementIn,
    RejectIn,
)
from app.schemas.common import DistinctPage, Page
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services.changes import approvals, requests
from app.services.changes.requests import CHANGES

router = APIRouter(prefix="/ws/{slug}/api/v1/changes", tags=["changes"], route_class=AuditedRoute)

Responses = dict[int | str, dict[str, Any]]
STATE: Responses = {
    409: {"description": "The change's state does not allow this (the problem's `state` says it)"}
}
REQUESTER: Responses = {
    403: {"description": "Only the change's requester may do this (or the permission)"}
}
DECIDE: Responses = {
    **STATE,
    403: {
        "description": "The caller lacks `change.approve`, or requested this change (separation "
        "of duties)"
    },
}
BODY: Responses = {
    400: {"description": "An unknown provider id, or a planned window that ends too early"}
}

Reader = Annotated[WorkspaceContext, Depends(require("change.read"))]
Creator = Annotated[WorkspaceContext, Depends(require("change.create"))]
Approver = Annotated[WorkspaceContext, Depends(require("change.approve"))]


@router.get(
    "",
    response_model=Page[ChangeSummaryOut],
    description=CHANGES.doc(
        'List change requests, newest first. E.g. `?state=submitted`, `?risk__in=["high"]`, '
        "`?requested_by=…`. A change about a provider is listed only to whoever sees it."
    ),
)
async def list_changes(
    ctx: Reader, query: Annotated[ListQuery, Depends(CHANGES.list_query)]
) -> dict[str, Any]:
    return query.page(await requests.list_changes(ctx, query))


@router.post("/search/{field}", response_model=Page[ChangeSummaryOut])
async def search_changes(
    ctx: Reader, query: Annotated[ListQuery, Depends(CHANGES.search_query)]
) -> dict[str, Any]:
    """Change requests whose `field` is one of the JSON list of values in the body."""
    return query.page(await requests.list_changes(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_changes(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(CHANGES.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the change requests you may see."""
    return await distinct(ctx, query)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ChangeOut, responses=BODY)
async def create_change(body: ChangeCreate, ctx: Creator) -> dict[str, Any]:
    """A new change request in `draft`, requested by you."""
    return await requests.create_change(ctx, body)


@router.post(
    "/bulk-approve",
    response_model=BulkApproveOut,
    openapi_extra={"x-audit-action": "bulk_approve"},
)
async def bulk_approve_changes(
    body: BulkApproveIn,
    ctx: Annotated[WorkspaceContext, Depends(require("change.bulk_approve"))],
) -> dict[str, Any]:
    """Approve several change requests; each is decided on its own and answered per id
    (`approved`, or `refused` with the reason). Separation of duties holds: your own
    changes are refused."""
    return {"results": await approvals.bulk_approve(ctx, body.ids, body.comment)}


@router.get("/{change_id}", response_model=ChangeOut)
async def get_change(change_id: str, ctx: Reader) -> dict[str, Any]:
    """A change request with its approvals (who, when, decision, comment)."""
    change = await requests.get_change(ctx, parse_id(change_id))
    return await requests.change_out(ctx, change)


@router.patch("/{change_id}", response_model=ChangeOut, responses={**BODY, **STATE, **REQUESTER})
async def update_change(change_id: str, body: ChangeUpdate, ctx: Creator) -> dict[str, Any]:
    """Edit a draft (requester only)."""
    return await requests.update_change(ctx, parse_id(change_id), body)


@router.post("/{change_id}/submit", response_model=ChangeOut, responses={**STATE, **REQUESTER})
async def submit_change(change_id: str, ctx: Creator) -> dict[str, Any]:
    """draft → submitted (requester only); the members who may approve it are notified."""
    return await requests.submit_change(ctx, parse_id(change_id))


@router.post("/{change_id}/approve", response_model=ChangeOut, responses=DECIDE)
async def approve_change(
    change_id: str, ctx: Approver, body: ApproveIn | None = None
) -> dict[str, Any]:
    """Add your approval (never to a change you requested); the change becomes `approved`
    when its approvals reach `required_approvals`."""
    comment = body.comment if body else None
    return await approvals.approve_change(ctx, parse_id(change_id), comment)


@router.post("/{change_id}/reject", response_model=ChangeOut, responses=DECIDE)
async def reject_change(change_id: str, body: RejectIn, ctx: Approver) -> dict[str, Any]:
    """submitted → rejected, with a reason (never a change you requested)."""
    return await approvals.reject_change(ctx, parse_id(change_id), body.reason)


@router.post("/{change_id}/implement", response_model=ChangeOut, responses={**STATE, **REQUESTER})
async def implement_change(
    change_id: str, ctx: Reader, body: ImplementIn | None = None
) -> dict[str, Any]:
    """approved → implemented, by the requester or a member with `change.create`."""
    notes = body.notes if body else None
    return await requests.implement_change(ctx, parse_id(change_id), notes)


@router.post("/{change_id}/cancel", response_model=ChangeOut, responses={**STATE, **REQUESTER})
async def cancel_change(change_id: str, ctx: Reader) -> dict[str, Any]:
    """draft or submitted → cancelled (requester only)."""
    return await requests.cancel_change(ctx, parse_id(change_id))
