"""`/ws/{slug}/api/v1/scans`: upload a JSON-OCSF report (imported by a background job)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile, status

from app.errors import PayloadTooLarge
from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.scan import ScanOut
from app.schemas.task import TaskOut
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import scans, tasks
from app.services.scans import SCANS

router = APIRouter(prefix="/ws/{slug}/api/v1/scans", tags=["scans"], route_class=AuditedRoute)

Reader = Annotated[WorkspaceContext, Depends(require("scan.read"))]


def _size_guard(request: Request) -> None:
    """Refuse a declared oversized body before anything is stored."""
    limit = request.app.state.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise PayloadTooLarge(f"The report is larger than {limit} bytes")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskOut,
    dependencies=[Depends(_size_guard)],
    operation_id="scans_upload",
    responses={
        202: {"description": "The import task; poll its `Content-Location`"},
        400: {"description": "The report is empty"},
    },
)
async def create_scan(
    request: Request,
    response: Response,
    ctx: Annotated[WorkspaceContext, Depends(require("scan.create"))],
    provider_id: Annotated[uuid.UUID, Form(description="The provider the report is for")],
    file: Annotated[UploadFile, File(description="A JSON-OCSF report (Prowler json-ocsf)")],
) -> Any:
    """Upload a report for a provider. The import runs in the background: records for another
    cloud account are rejected (counted), duplicates by finding uid are skipped (counted)."""
    settings = request.app.state.settings
    _, task = await scans.create_scan(
        ctx,
        provider_id,
        file,
        chunk_bytes=settings.upload_chunk_bytes,
        max_bytes=settings.max_upload_bytes,
    )
    response.headers["Content-Location"] = tasks.location(ctx.slug or "", task.id)
    return task


def _scan_page(query: ListQuery, rows: list[Any]) -> dict[str, Any]:
    out = query.page(rows)
    out["data"] = [scans.scan_out(s) for s in out["data"]]
    return out


@router.get(
    "",
    response_model=Page[ScanOut],
    description=SCANS.doc("Scans with their finding counts per severity and status."),
)
async def list_scans(
    ctx: Reader, query: Annotated[ListQuery, Depends(SCANS.list_query)]
) -> dict[str, Any]:
    return _scan_page(query, await scans.list_scans(ctx, query))


@router.post("/search/{field}", response_model=Page[ScanOut])
async def search_scans(
    ctx: Reader, query: Annotated[ListQuery, Depends(SCANS.search_query)]
) -> dict[str, Any]:
    """Scans whose `field` is one of the JSON list of values in the body."""
    return _scan_page(query, await scans.list_scans(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_scans(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(SCANS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the scans you may see (filters apply)."""
    return await distinct(ctx, query)


@router.get("/{scan_id}", response_model=ScanOut)
async def get_scan(scan_id: str, ctx: Reader) -> dict[str, Any]:
    return scans.scan_out(await scans.get_scan(ctx, parse_id(scan_id)))
