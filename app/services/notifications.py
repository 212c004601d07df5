"""Notifications: queued with the action (an outbox job, so only once it has committed),
written by that job into each recipient's own rows, read by the recipient.

Delivery runs in the *recipient's* workspace context: their membership and permission are
re-checked and the resource is read again with their visibility, so nobody is told about a
change or an incident they could not open. Notifications about a workspace the user is no
longer a member of are not shown (invitations excepted: they are about joining one).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from app.db.models import ChangeRequest, Incident, Notification, Workspace
from app.db.models.notification import NOTIFICATION_KINDS, OUTSIDER_KINDS
from app.errors import NotFound
from app.jobs import NOTIFY_CHANGE, NOTIFY_INCIDENT, JobKind
from app.query import Boolean, Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.security.principal import UserContext, WorkspaceContext
from app.services import audience, outbox

APPROVERS = ("change.approve", "change.bulk_approve")

NOTIFICATIONS = Resource(
    name="notification",
    base=lambda: select(Notification),
    fields={
        "id": Field(Notification.id, Uuid()),
        "kind": Field(Notification.kind, Enum(NOTIFICATION_KINDS)),
        "workspace": Field(Notification.workspace_slug, Text()),
        "workspace_id": Field(Notification.about_workspace_id, Uuid()),
        "unread": Field(Notification.read_at.is_(None), Boolean(), sortable=False),
        "resource_type": Field(Notification.resource_type, Text(), nullable=True),
        "resource_id": Field(Notification.resource_id, Uuid(), nullable=True),
        "created_at": Field(Notification.created_at, Timestamp()),
        "read_at": Field(Notification.read_at, Timestamp(), nullable=True),
    },
    default_sort=("-id",),
)


# Queueing (in the acting request's transaction)


async def queue(ctx: WorkspaceContext, kind: JobKind, event: str, **ids: uuid.UUID) -> None:
    """Queue the job that tells whoever should know about `event`; it runs only if the
    caller's transaction commits."""
    await outbox.add_job(ctx, kind, args={"event": event, **{k: str(v) for k, v in ids.items()}})


# Who to tell (in the actor's context, by the job)


async def change_recipients(
    ctx: WorkspaceContext, change_id: uuid.UUID, event: str
) -> list[uuid.UUID]:
    """A submitted change: every member who may approve it but its requester; approved,
    rejected, implemented: its requester. Never the actor."""
    stmt = select(ChangeRequest.requested_by).where(ChangeRequest.id == change_id)
    requester = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if requester is None:
        return []
    if event == "submitted":
        who = [u for u in await audience.holders(ctx, APPROVERS) if u != requester]
    else:
        who = [requester]
    return [u for u in who if u != ctx.user_id]


async def incident_recipients(
    ctx: WorkspaceContext, incident_id: uuid.UUID, assignee_id: uuid.UUID
) -> list[uuid.UUID]:
    """The assignee, if still assigned (and not the actor)."""
    stmt = select(Incident.assignee_id).where(Incident.id == incident_id)
    current = (await ctx.session.execute(stmt)).scalar_one_or_none()
    return [assignee_id] if current == assignee_id and assignee_id != ctx.user_id else []


# Writing one (in the recipient's context, by the job)


@dataclass(frozen=True)
class Message:
    kind: str
    title: str
    resource_type: str
    resource_id: uuid.UUID


async def _change_message(ctx: WorkspaceContext, args: dict[str, Any]) -> Message | None:
    stmt = select(ChangeRequest).where(ChangeRequest.id == uuid.UUID(args["change_id"]))
    change = (await ctx.session.execute(stmt)).scalar_one_or_none()
    event = args["event"]
    if change is None:
        return None
    if event == "submitted":
        if not any(ctx.principal.can(p) for p in APPROVERS):
            return None
        title = f"Change '{change.title}' ({change.risk} risk) was submitted for your approval"
    else:
        title = f"Your change '{change.title}' was {event}"
    return Message(f"change.{event}", title, "change", change.id)


async def _incident_message(ctx: WorkspaceContext, args: dict[str, Any]) -> Message | None:
    stmt = select(Incident).where(Incident.id == uuid.UUID(args["incident_id"]))
    incident = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if incident is None or incident.assignee_id != ctx.user_id:
        return None
    title = f"Incident '{incident.title}' ({incident.severity}) is assigned to you"
    return Message("incident.assigned", title, "incident", incident.id)


MESSAGES = {NOTIFY_CHANGE.name: _change_message, NOTIFY_INCIDENT.name: _incident_message}


async def deliver(
    ctx: WorkspaceContext,
    kind: JobKind,
    args: dict[str, Any],
    actor_id: uuid.UUID,
    dedupe_key: str,
) -> int:
    """Write the notification for the member in context, if they (still) should have it;
    once per `dedupe_key`. Returns how many rows were written (0 or 1)."""
    message = await MESSAGES[kind.name](ctx, args)
    if message is None:
        return 0
    slug = (
        await ctx.session.execute(select(Workspace.slug).where(Workspace.id == ctx.workspace_id))
    ).scalar_one()
    result = await ctx.session.execute(
        insert(Notification)
        .values(
            user_id=ctx.user_id,
            kind=message.kind,
            about_workspace_id=ctx.workspace_id,
            workspace_slug=slug,
            title=message.title[:300],
            resource_type=message.resource_type,
            resource_id=message.resource_id,
            actor_id=actor_id,
            dedupe_key=dedupe_key,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "dedupe_key"])
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Reading (the recipient, outside any workspace)


_MY_WORKSPACES = text("SELECT id FROM warden_user_workspaces()")


async def _visible(ctx: UserContext) -> Any:
    """The user's notifications about workspaces they are a member of (and invitations). The
    workspaces are read first, on their own: on Citus the definer function cannot run inside
    a statement over the (distributed) notifications."""
    mine = list((await ctx.session.execute(_MY_WORKSPACES)).scalars())
    return (
        Notification.user_id == ctx.principal.user_id,
        or_(
            Notification.kind.in_(OUTSIDER_KINDS),
            Notification.about_workspace_id.in_(mine),
        ),
    )


def notification_out(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "workspace": n.workspace_slug,
        "workspace_id": n.about_workspace_id,
        "title": n.title,
        "body": n.body,
        "resource_type": n.resource_type,
        "resource_id": n.resource_id,
        "actor_id": n.actor_id,
        "unread": n.read_at is None,
        "created_at": n.created_at,
        "read_at": n.read_at,
    }


async def list_notifications(ctx: UserContext, query: ListQuery) -> list[dict[str, Any]]:
    stmt = query.statement(select(Notification).where(*await _visible(ctx)))
    return [notification_out(n) for n in (await ctx.session.execute(stmt)).scalars()]


async def mark_read(ctx: UserContext, notification_id: uuid.UUID) -> dict[str, Any]:
    stmt = (
        update(Notification)
        .where(Notification.id == notification_id, *await _visible(ctx))
        # The clock as a value: Citus refuses a non-immutable function inside COALESCE.
        .values(read_at=func.coalesce(Notification.read_at, datetime.now(UTC)))
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    row = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound("Notification not found")
    return notification_out(row)


async def mark_all_read(ctx: UserContext) -> int:
    stmt = (
        update(Notification)
        .where(Notification.read_at.is_(None), *await _visible(ctx))
        .values(read_at=func.now())
        .execution_options(synchronize_session=False)
    )
    result = await ctx.session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
