"""`/ws/{slug}/api/v1/incidents`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.change_management import (
    IncidentCreate,
    IncidentOut,
    IncidentSummaryOut,
    IncidentUpdate,
)
from app.schemas.common import DistinctPage, Page
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import incidents
from app.services.incidents import INCIDENTS

router = APIRouter(
    prefix="/ws/{slug}/api/v1/incidents", tags=["incidents"], route_class=AuditedRoute
)

BAD_VALUE: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "An unknown provider id, an assignee who may not read the incident, or "
        "`resolved` without a resolution"
    }
}
MOVE: dict[int | str, dict[str, Any]] = {
    409: {"description": "Not an allowed status move (`current_status` says the status)"}
}

Reader = Annotated[WorkspaceContext, Depends(require("incident.read"))]


@router.get(
    "",
    response_model=Page[IncidentSummaryOut],
    description=INCIDENTS.doc("List incidents, newest first. E.g. `?status=open&severity=sev1`."),
)
async def list_incidents(
    ctx: Reader, query: Annotated[ListQuery, Depends(INCIDENTS.list_query)]
) -> dict[str, Any]:
    return query.page(await incidents.list_incidents(ctx, query))


@router.post("/search/{field}", response_model=Page[IncidentSummaryOut])
async def search_incidents(
    ctx: Reader, query: Annotated[ListQuery, Depends(INCIDENTS.search_query)]
) -> dict[str, Any]:
    """Incidents whose `field` is one of the JSON list of values in the body."""
    return query.page(await incidents.list_incidents(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_incidents(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(INCIDENTS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the incidents you may see."""
    return await distinct(ctx, query)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=IncidentOut, responses=BAD_VALUE
)
async def create_incident(
    body: IncidentCreate,
    ctx: Annotated[WorkspaceContext, Depends(require("incident.create"))],
) -> dict[str, Any]:
    """Open an incident (`status: open`); an assignee is told once it is created."""
    return await incidents.create_incident(ctx, body)


@router.get("/{incident_id}", response_model=IncidentOut)
async def get_incident(incident_id: str, ctx: Reader) -> dict[str, Any]:
    """An incident with its timeline of status changes."""
    return await incidents.get_incident(ctx, parse_id(incident_id))


@router.patch("/{incident_id}", response_model=IncidentOut, responses={**BAD_VALUE, **MOVE})
async def update_incident(
    incident_id: str,
    body: IncidentUpdate,
    ctx: Annotated[WorkspaceContext, Depends(require("incident.update"))],
) -> dict[str, Any]:
    """Move the status (allowed moves only, 409 otherwise; `resolved` needs a `resolution`),
    change the severity, assign (a member who may read incidents) or unassign (`null`)."""
    return await incidents.update_incident(ctx, parse_id(incident_id), body)
