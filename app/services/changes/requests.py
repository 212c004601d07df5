"""The requester's side of a change request (create, edit, submit, implement, cancel) and
reading them. Scope and visibility come from the session; nothing here filters by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from app.db.models import ChangeApproval, ChangeRequest, Provider
from app.db.models.change import CHANGE_STATES, RISKS
from app.errors import BadRequest, Forbidden, NotFound
from app.jobs import NOTIFY_CHANGE
from app.query import Enum, Field, Integer, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.change_management import ChangeCreate, ChangeUpdate
from app.security.principal import WorkspaceContext
from app.services import notifications
from app.services.changes.machine import ensure

CHANGES = Resource(
    name="change",
    base=lambda: select(ChangeRequest),
    fields={
        "id": Field(ChangeRequest.id, Uuid()),
        "title": Field(ChangeRequest.title, Text()),
        "risk": Field(ChangeRequest.risk, Enum(RISKS)),
        "state": Field(ChangeRequest.state, Enum(CHANGE_STATES)),
        "provider_id": Field(ChangeRequest.provider_id, Uuid(), nullable=True),
        "requested_by": Field(ChangeRequest.requested_by, Uuid()),
        "required_approvals": Field(ChangeRequest.required_approvals, Integer()),
        "approval_count": Field(ChangeRequest.approval_count, Integer()),
        "planned_start": Field(ChangeRequest.planned_start, Timestamp(), nullable=True),
        "planned_end": Field(ChangeRequest.planned_end, Timestamp(), nullable=True),
        "submitted_at": Field(ChangeRequest.submitted_at, Timestamp(), nullable=True),
        "decided_at": Field(ChangeRequest.decided_at, Timestamp(), nullable=True),
        "implemented_at": Field(ChangeRequest.implemented_at, Timestamp(), nullable=True),
        "created_at": Field(ChangeRequest.created_at, Timestamp()),
        "updated_at": Field(ChangeRequest.updated_at, Timestamp()),
    },
    default_sort=("-id",),
)


async def list_changes(ctx: WorkspaceContext, query: ListQuery) -> list[ChangeRequest]:
    return list((await ctx.session.execute(query.statement())).scalars())


async def get_change(
    ctx: WorkspaceContext, change_id: uuid.UUID, *, lock: bool = False
) -> ChangeRequest:
    """A change the caller may see (404 otherwise); `lock` takes its row lock, which every
    transition holds until commit, so transitions of one change happen one at a time."""
    stmt = select(ChangeRequest).where(ChangeRequest.id == change_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    change = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if change is None:
        raise NotFound("Change request not found")
    return change


async def change_out(ctx: WorkspaceContext, change: ChangeRequest) -> dict[str, Any]:
    """The change with its decisions (who, when, which, why), oldest first."""
    rows = await ctx.session.execute(
        select(ChangeApproval)
        .where(ChangeApproval.change_id == change.id)
        .order_by(ChangeApproval.created_at, ChangeApproval.approver_id)
    )
    out = {c: getattr(change, c) for c in _COLUMNS}
    out["approvals"] = [
        {
            "approver_id": a.approver_id,
            "decision": a.decision,
            "comment": a.comment,
            "created_at": a.created_at,
        }
        for a in rows.scalars()
    ]
    return out


_COLUMNS = (
    "id",
    "title",
    "description",
    "risk",
    "provider_id",
    "planned_start",
    "planned_end",
    "required_approvals",
    "approval_count",
    "state",
    "requested_by",
    "submitted_at",
    "decided_at",
    "implemented_at",
    "implemented_by",
    "implementation_notes",
    "cancelled_at",
    "created_at",
    "updated_at",
)


async def check_provider(ctx: WorkspaceContext, provider_id: uuid.UUID | None) -> None:
    """A change or incident may name a provider the caller sees (and that is not deleted)."""
    if provider_id is None:
        return
    stmt = select(Provider.id).where(Provider.id == provider_id, Provider.deleted_at.is_(None))
    if (await ctx.session.execute(stmt)).first() is None:
        raise BadRequest(f"Unknown provider id: {provider_id}")


async def create_change(ctx: WorkspaceContext, data: ChangeCreate) -> dict[str, Any]:
    await check_provider(ctx, data.provider_id)
    change = ChangeRequest(
        **data.model_dump(), state="draft", approval_count=0, requested_by=ctx.user_id
    )
    ctx.session.add(change)
    await ctx.session.flush()
    await ctx.session.refresh(change)
    return await change_out(ctx, change)


def _requester_only(ctx: WorkspaceContext, change: ChangeRequest, what: str) -> None:
    if change.requested_by != ctx.user_id:
        raise Forbidden(f"Only the requester of a change request may {what} it")


async def update_change(
    ctx: WorkspaceContext, change_id: uuid.UUID, data: ChangeUpdate
) -> dict[str, Any]:
    change = await get_change(ctx, change_id, lock=True)
    _requester_only(ctx, change, "edit")
    ensure(change, "update")
    values = data.model_dump(exclude_unset=True)
    if "provider_id" in values:
        await check_provider(ctx, values["provider_id"])
    start = values.get("planned_start", change.planned_start)
    end = values.get("planned_end", change.planned_end)
    if start is not None and end is not None and end <= start:
        raise BadRequest("planned_end must be after planned_start")
    for field, value in values.items():
        setattr(change, field, value)
    change.updated_at = func.now()
    await ctx.session.flush()
    await ctx.session.refresh(change)
    return await change_out(ctx, change)


async def submit_change(ctx: WorkspaceContext, change_id: uuid.UUID) -> dict[str, Any]:
    """draft → submitted; the members who may approve it are told once this commits."""
    change = await get_change(ctx, change_id, lock=True)
    _requester_only(ctx, change, "submit")
    ensure(change, "submit")
    change.state, change.submitted_at = "submitted", datetime.now(UTC)
    change.updated_at = func.now()
    await ctx.session.flush()
    await notifications.queue(ctx, NOTIFY_CHANGE, "submitted", change_id=change.id)
    await ctx.session.refresh(change)
    return await change_out(ctx, change)


async def implement_change(
    ctx: WorkspaceContext, change_id: uuid.UUID, notes: str | None
) -> dict[str, Any]:
    """approved → implemented, by the requester or anyone who may create changes."""
    change = await get_change(ctx, change_id, lock=True)
    if change.requested_by != ctx.user_id and not ctx.principal.can("change.create"):
        raise Forbidden(
            "Only the requester, or a member with the 'change.create' permission, may "
            "implement a change request"
        )
    ensure(change, "implement")
    change.state = "implemented"
    change.implemented_at, change.implemented_by = datetime.now(UTC), ctx.user_id
    change.implementation_notes = notes
    change.updated_at = func.now()
    await ctx.session.flush()
    await notifications.queue(ctx, NOTIFY_CHANGE, "implemented", change_id=change.id)
    await ctx.session.refresh(change)
    return await change_out(ctx, change)


async def cancel_change(ctx: WorkspaceContext, change_id: uuid.UUID) -> dict[str, Any]:
    """draft or submitted → cancelled, by the requester."""
    change = await get_change(ctx, change_id, lock=True)
    _requester_only(ctx, change, "cancel")
    ensure(change, "cancel")
    change.state, change.cancelled_at = "cancelled", datetime.now(UTC)
    change.updated_at = func.now()
    await ctx.session.flush()
    await ctx.session.refresh(change)
    return await change_out(ctx, change)
