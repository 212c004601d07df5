"""Incidents: opened, moved through their statuses (each move on the timeline), assigned.

Allowed moves (anything else is 409 with the current status):

    open ──► investigating ◄──► mitigated
      │            │               │
      └────────────┴──► resolved ◄─┘ ──► closed
                          │
                          └──► investigating (reopened)

`resolved` needs a resolution (400 without one; the database refuses a resolved or closed
incident without it too). An assignee must be a member who may read incidents and would see
this one (400 otherwise); they are told once the change commits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from app.db.models import Incident, IncidentEvent
from app.db.models.incident import INCIDENT_STATUSES, SEVERITIES
from app.errors import BadRequest, Conflict, NotFound
from app.jobs import NOTIFY_INCIDENT
from app.query import Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.change_management import IncidentCreate, IncidentUpdate
from app.security.principal import WorkspaceContext
from app.services import audience, notifications
from app.services.changes.requests import check_provider

MOVES: dict[str, frozenset[str]] = {
    "open": frozenset({"investigating", "mitigated", "resolved"}),
    "investigating": frozenset({"mitigated", "resolved"}),
    "mitigated": frozenset({"investigating", "resolved"}),
    "resolved": frozenset({"closed", "investigating"}),
    "closed": frozenset(),
}

INCIDENTS = Resource(
    name="incident",
    base=lambda: select(Incident),
    fields={
        "id": Field(Incident.id, Uuid()),
        "title": Field(Incident.title, Text()),
        "severity": Field(Incident.severity, Enum(SEVERITIES)),
        "status": Field(Incident.status, Enum(INCIDENT_STATUSES)),
        "provider_id": Field(Incident.provider_id, Uuid(), nullable=True),
        "assignee_id": Field(Incident.assignee_id, Uuid(), nullable=True),
        "created_by": Field(Incident.created_by, Uuid()),
        "created_at": Field(Incident.created_at, Timestamp()),
        "updated_at": Field(Incident.updated_at, Timestamp()),
        "resolved_at": Field(Incident.resolved_at, Timestamp(), nullable=True),
        "closed_at": Field(Incident.closed_at, Timestamp(), nullable=True),
    },
    default_sort=("-id",),
)

_COLUMNS = (
    "id",
    "title",
    "description",
    "severity",
    "status",
    "provider_id",
    "assignee_id",
    "resolution",
    "created_by",
    "resolved_at",
    "closed_at",
    "created_at",
    "updated_at",
)


async def list_incidents(ctx: WorkspaceContext, query: ListQuery) -> list[Incident]:
    return list((await ctx.session.execute(query.statement())).scalars())


async def _get(ctx: WorkspaceContext, incident_id: uuid.UUID, *, lock: bool = False) -> Incident:
    stmt = select(Incident).where(Incident.id == incident_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    incident = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if incident is None:
        raise NotFound("Incident not found")
    return incident


async def incident_out(ctx: WorkspaceContext, incident: Incident) -> dict[str, Any]:
    """The incident with its timeline of status changes, oldest first."""
    events = await ctx.session.execute(
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident.id)
        .order_by(IncidentEvent.id)
    )
    out = {c: getattr(incident, c) for c in _COLUMNS}
    out["timeline"] = [
        {
            "from_status": e.from_status,
            "to_status": e.to_status,
            "note": e.note,
            "actor_id": e.actor_id,
            "created_at": e.created_at,
        }
        for e in events.scalars()
    ]
    return out


async def get_incident(ctx: WorkspaceContext, incident_id: uuid.UUID) -> dict[str, Any]:
    return await incident_out(ctx, await _get(ctx, incident_id))


async def _check_assignee(ctx: WorkspaceContext, incident: Incident, member: Any) -> None:
    if not await audience.member_may_see(ctx, member, "incident.read", Incident, incident.id):
        raise BadRequest(
            "The assignee must be a member of this workspace who may read this incident"
        )


def _event(incident: Incident, before: str | None, ctx: WorkspaceContext) -> IncidentEvent:
    note = incident.resolution if incident.status == "resolved" else None
    return IncidentEvent(
        incident_id=incident.id,
        from_status=before,
        to_status=incident.status,
        note=note,
        actor_id=ctx.user_id,
    )


async def create_incident(ctx: WorkspaceContext, data: IncidentCreate) -> dict[str, Any]:
    await check_provider(ctx, data.provider_id)
    assignee = None
    if data.assignee_id is not None:
        assignee = await audience.member_principal(ctx, data.assignee_id)
    values = data.model_dump(exclude={"assignee_id"})
    incident = Incident(**values, status="open", created_by=ctx.user_id)
    ctx.session.add(incident)
    await ctx.session.flush()  # the assignee check asks whether they would see this row
    if data.assignee_id is not None:
        await _check_assignee(ctx, incident, assignee)
        incident.assignee_id = data.assignee_id
    ctx.session.add(_event(incident, None, ctx))
    await ctx.session.flush()
    if data.assignee_id is not None:
        await notifications.queue(
            ctx, NOTIFY_INCIDENT, "assigned", incident_id=incident.id, assignee_id=data.assignee_id
        )
    await ctx.session.refresh(incident)
    return await incident_out(ctx, incident)


def _move(incident: Incident, status: str, resolution: str | None) -> None:
    if status not in MOVES[incident.status]:
        allowed = ", ".join(sorted(MOVES[incident.status])) or "none (it is final)"
        raise Conflict(
            f"An incident cannot go from {incident.status} to {status}; allowed: {allowed}",
            current_status=incident.status,
        )
    if status == "resolved" and not (resolution or incident.resolution):
        raise BadRequest("Resolving an incident needs a resolution")
    now = datetime.now(UTC)
    if status == "resolved":
        incident.resolved_at = now
    elif status == "closed":
        incident.closed_at = now
    else:
        incident.resolved_at = None
    incident.status = status


async def update_incident(
    ctx: WorkspaceContext, incident_id: uuid.UUID, data: IncidentUpdate
) -> dict[str, Any]:
    values = data.model_dump(exclude_unset=True)
    wanted = values.get("assignee_id")
    member = await audience.member_principal(ctx, wanted) if wanted is not None else None
    incident = await _get(ctx, incident_id, lock=True)
    before, assignee = incident.status, incident.assignee_id
    if "resolution" in values:
        incident.resolution = values["resolution"]
    if "status" in values and values["status"] != incident.status:
        _move(incident, values["status"], values.get("resolution"))
    if "severity" in values:
        incident.severity = values["severity"]
    new_assignee = values.get("assignee_id", assignee)
    if new_assignee is not None and new_assignee != assignee:
        await _check_assignee(ctx, incident, member)
    incident.assignee_id = new_assignee
    incident.updated_at = func.now()
    if incident.status != before:
        ctx.session.add(_event(incident, before, ctx))
    await ctx.session.flush()
    if new_assignee is not None and new_assignee != assignee:
        await notifications.queue(
            ctx, NOTIFY_INCIDENT, "assigned", incident_id=incident.id, assignee_id=new_assignee
        )
    await ctx.session.refresh(incident)
    return await incident_out(ctx, incident)
