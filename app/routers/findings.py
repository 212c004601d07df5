"""`/ws/{slug}/api/v1/findings`: imported findings, filtered (filters: app.services.findings)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from app.db.models import Finding
from app.routers.pagination import PageParams
from app.schemas.common import Page
from app.schemas.scan import FindingDetail, FindingOut
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import findings

router = APIRouter(prefix="/ws/{slug}/api/v1/findings", tags=["findings"])

Reader = Annotated[WorkspaceContext, Depends(require("finding.read"))]

_FILTER_HELP = ", ".join(
    f"`{name}`" + "".join(f" / `{name}__{op}`" for op in f.ops if op != "eq")
    for name, f in findings.FILTERS.items()
)


@router.get(
    "",
    response_model=Page[FindingOut],
    description=(
        f"Findings in id (= import time) order. Filters: {_FILTER_HELP}. `__in` takes a JSON "
        "list; `inserted_at__gte` / `inserted_at__lt` take ISO 8601 instants."
    ),
)
async def list_findings(
    request: Request, ctx: Reader, page: Annotated[PageParams, Depends()]
) -> dict[str, Any]:
    rows = await findings.list_findings(
        ctx.session, page.limit, page.after, request.query_params
    )
    return page.page(rows)


@router.get("/{finding_id}", response_model=FindingDetail)
async def get_finding(finding_id: str, ctx: Reader) -> Finding:
    """One finding, with the raw OCSF record it was imported from."""
    return await findings.get_finding(ctx.session, parse_id(finding_id))
