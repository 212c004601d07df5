"""Deciding on change requests: approve, reject, approve several at once.

Separation of duties holds whatever the caller's grants (owners and custom roles included):
the requester never decides on their own change. The database holds the same line: the
decision row carries the change's requester through a foreign key and a CHECK refuses
`approver_id = requested_by`, and its primary key allows one decision per person per change.
A decision takes the change's row lock first, so concurrent decisions on one change queue: the
count never exceeds what is required and never counts twice (the second of two approvers on a
one-approval change finds it approved, 409).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db.audit import note_item
from app.db.models import ChangeApproval, ChangeRequest
from app.errors import AppError, Conflict, Forbidden
from app.jobs import NOTIFY_CHANGE
from app.schemas.change_management import ChangeOut
from app.security.audit import redact
from app.security.principal import WorkspaceContext
from app.services import notifications
from app.services.changes.machine import ensure
from app.services.changes.requests import change_out, get_change

SOD = (
    "Separation of duties: you requested this change, so you may neither approve nor reject "
    "it (whatever your role)"
)


async def _decide(
    ctx: WorkspaceContext, change_id: uuid.UUID, decision: str, comment: str | None
) -> ChangeRequest:
    change = await get_change(ctx, change_id, lock=True)
    if change.requested_by == ctx.user_id:
        raise Forbidden(SOD)
    ensure(change, decision)
    mine = select(ChangeApproval.decision).where(
        ChangeApproval.change_id == change.id, ChangeApproval.approver_id == ctx.user_id
    )
    earlier = (await ctx.session.execute(mine)).scalar_one_or_none()
    if earlier is not None:
        raise Conflict(
            f"You already decided on this change request ({earlier}); one decision per person",
            state=change.state,
        )
    ctx.session.add(
        ChangeApproval(
            change_id=change.id,
            approver_id=ctx.user_id,
            requested_by=change.requested_by,
            decision=decision,
            comment=comment,
        )
    )
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        raise Conflict("The decision conflicts with an existing one", state=change.state) from None
    now = datetime.now(UTC)
    if decision == "approve":
        change.approval_count += 1
        if change.approval_count >= change.required_approvals:
            change.state, change.decided_at = "approved", now
    else:
        change.state, change.decided_at = "rejected", now
    change.updated_at = now
    await ctx.session.flush()
    if change.state in ("approved", "rejected"):
        await notifications.queue(ctx, NOTIFY_CHANGE, change.state, change_id=change.id)
    return change


async def approve_change(
    ctx: WorkspaceContext, change_id: uuid.UUID, comment: str | None
) -> dict[str, Any]:
    """Add the caller's approval; the change is approved once it has enough."""
    change = await _decide(ctx, change_id, "approve", comment)
    await ctx.session.refresh(change)
    return await change_out(ctx, change)


async def reject_change(ctx: WorkspaceContext, change_id: uuid.UUID, reason: str) -> dict[str, Any]:
    change = await _decide(ctx, change_id, "reject", reason)
    await ctx.session.refresh(change)
    return await change_out(ctx, change)


async def bulk_approve(
    ctx: WorkspaceContext, ids: list[uuid.UUID], comment: str | None
) -> list[dict[str, Any]]:
    """Approve each change on its own (a refusal of one leaves the others as they are), in id
    order (two bulk approvals lock their changes in the same order, so they cannot deadlock);
    answered per id, in the order asked. Each approved change gets an audit record of its own
    (with its new state), so its history shows the approval."""
    unique = list(dict.fromkeys(ids))
    results: dict[uuid.UUID, dict[str, Any]] = {}
    for change_id in sorted(unique):
        try:
            async with ctx.session.begin_nested():
                change = await _decide(ctx, change_id, "approve", comment)
            results[change_id] = {"id": change_id, "outcome": "approved", "state": change.state}
            after = ChangeOut.model_validate(await change_out(ctx, change)).model_dump(mode="json")
            note_item(ctx.tx, "approve", "change", change.id, redact(after))
        except AppError as exc:
            state = exc.extra.get("state")
            results[change_id] = {
                "id": change_id,
                "outcome": "refused",
                "state": state,
                "reason": exc.detail,
            }
    return [results[i] for i in unique]
