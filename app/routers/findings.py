"""`/ws/{slug}/api/v1/findings`: imported findings, in the query language."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.db.models import Finding
from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.scan import FindingDetail, FindingOut
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import findings
from app.services.findings import FINDINGS

router = APIRouter(prefix="/ws/{slug}/api/v1/findings", tags=["findings"], route_class=AuditedRoute)

Reader = Annotated[WorkspaceContext, Depends(require("finding.read"))]


@router.get(
    "",
    response_model=Page[FindingOut],
    description=FINDINGS.doc(
        "List findings. `inserted_at__gte` / `inserted_at__lt` bound the import time and "
        "prune the monthly partitions outside it."
    ),
)
async def list_findings(
    ctx: Reader, query: Annotated[ListQuery, Depends(FINDINGS.list_query)]
) -> dict[str, Any]:
    return query.page(await findings.list_findings(ctx, query))


@router.post("/search/{field}", response_model=Page[FindingOut])
async def search_findings(
    ctx: Reader, query: Annotated[ListQuery, Depends(FINDINGS.search_query)]
) -> dict[str, Any]:
    """Findings whose `field` is one of the JSON list of values in the body."""
    return query.page(await findings.list_findings(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_findings(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(FINDINGS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the findings you may see (filters apply)."""
    return await distinct(ctx, query)


@router.get("/{finding_id}", response_model=FindingDetail)
async def get_finding(finding_id: str, ctx: Reader) -> Finding:
    """One finding, with the raw OCSF record it was imported from."""
    return await findings.get_finding(ctx, parse_id(finding_id))
