"""`notify.*`: tell the members who should know about a change, an incident or an invitation.

The job runs in the actor's name (their membership re-checked) to find the recipients, then
writes each notification in that *recipient's* own context, where their membership, permission
and visibility of the resource are checked again: a recipient who left, lost the permission or
cannot see the resource gets nothing. A re-delivered job writes nothing twice (one row per
recipient and outbox id)."""

from __future__ import annotations

import uuid
from typing import Any

from app.jobs import NOTIFY_CHANGE, NOTIFY_INCIDENT, NOTIFY_INVITATION, JobKind
from app.security.principal import WorkspaceContext
from app.services import invitations, notifications
from workers.context import JobContext, Refused, job, with_rls_context


async def _deliver(jc: JobContext, recipients: list[uuid.UUID], permission: str) -> int:
    written = 0
    for user_id in recipients:
        try:
            async with with_rls_context(jc.db, jc.workspace_id, user_id, permission) as ctx:
                written += await notifications.deliver(
                    ctx, jc.spec.kind, jc.args, jc.user_id, str(jc.outbox_id)
                )
        except Refused:
            continue  # no longer a member, or no longer allowed to read it
    return written


async def _fan_out(jc: JobContext, kind: JobKind, recipients: list[uuid.UUID]) -> dict[str, Any]:
    written = await _deliver(jc, recipients, kind.permission)
    return {"recipients": len(recipients), "notified": written}


@job(NOTIFY_CHANGE, atomic=False)
async def notify_change(jc: JobContext, _: WorkspaceContext | None) -> dict[str, Any]:
    async with jc.transaction() as ctx:
        recipients = await notifications.change_recipients(
            ctx, uuid.UUID(jc.args["change_id"]), jc.args["event"]
        )
    return await _fan_out(jc, NOTIFY_CHANGE, recipients)


@job(NOTIFY_INCIDENT, atomic=False)
async def notify_incident(jc: JobContext, _: WorkspaceContext | None) -> dict[str, Any]:
    async with jc.transaction() as ctx:
        recipients = await notifications.incident_recipients(
            ctx, uuid.UUID(jc.args["incident_id"]), uuid.UUID(jc.args["assignee_id"])
        )
    return await _fan_out(jc, NOTIFY_INCIDENT, recipients)


@job(NOTIFY_INVITATION)
async def notify_invitation(jc: JobContext, ctx: WorkspaceContext | None) -> dict[str, Any]:
    """The invited user is not a member: the narrow definer path writes their notice (only for
    a pending invitation of this workspace, only to the user with that email)."""
    assert ctx is not None
    return {"notified": await invitations.notify_invited(ctx, uuid.UUID(jc.args["invitation_id"]))}
