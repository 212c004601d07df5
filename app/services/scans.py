"""Scans: accept an uploaded JSON-OCSF report (stored in chunks, imported by a job), list them."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Protocol

from sqlalchemy import select

from app.db.models import Scan, ScanUpload, Task
from app.db.models.scan import SCAN_STATES, SEVERITIES, STATUSES
from app.errors import BadRequest, NotFound, PayloadTooLarge
from app.jobs import IMPORT_SCAN
from app.query import Enum, Field, Integer, ListQuery, Resource, Text, Timestamp, Uuid
from app.security.principal import WorkspaceContext
from app.services import providers, tasks


class Upload(Protocol):
    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


async def create_scan(
    ctx: WorkspaceContext,
    provider_id: uuid.UUID,
    upload: Upload,
    *,
    chunk_bytes: int,
    max_bytes: int,
) -> tuple[Scan, Task]:
    """Store the report (chunk by chunk, never whole in memory) and queue its import."""
    session = ctx.session
    provider = await providers.get_provider(ctx, provider_id)
    scan = Scan(
        provider_id=provider.id,
        file_name=(upload.filename or "report.ocsf.json")[:255],
        file_size=0,
        file_sha256="",
        created_by=ctx.user_id,
        state="pending",
    )
    session.add(scan)
    await session.flush()
    digest, size, seq = hashlib.sha256(), 0, 0
    while chunk := await upload.read(chunk_bytes):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The report is larger than {max_bytes} bytes")
        digest.update(chunk)
        part = ScanUpload(scan_id=scan.id, seq=seq, data=chunk)
        session.add(part)
        await session.flush()
        session.expunge(part)  # keep one chunk in memory, not the whole report
        seq += 1
    if size == 0:
        raise BadRequest("The uploaded report is empty")
    scan.file_size, scan.file_sha256 = size, digest.hexdigest()
    task = await tasks.start(
        ctx,
        IMPORT_SCAN,
        resource_type="scan",
        resource_id=scan.id,
        provider_id=provider.id,
        args={"scan_id": str(scan.id)},
    )
    scan.task_id = task.id
    await session.flush()
    await session.refresh(scan)
    return scan, task


SCANS = Resource(
    name="scan",
    base=lambda: select(Scan),
    fields={
        "id": Field(Scan.id, Uuid()),
        "provider_id": Field(Scan.provider_id, Uuid()),
        "task_id": Field(Scan.task_id, Uuid(), nullable=True),
        "state": Field(Scan.state, Enum(SCAN_STATES)),
        "file_name": Field(Scan.file_name, Text()),
        "findings_count": Field(Scan.findings_count, Integer()),
        "rejected_count": Field(Scan.rejected_count, Integer()),
        "created_by": Field(Scan.created_by, Uuid()),
        "created_at": Field(Scan.created_at, Timestamp()),
        "completed_at": Field(Scan.completed_at, Timestamp(), nullable=True),
    },
)


async def list_scans(ctx: WorkspaceContext, query: ListQuery) -> list[Scan]:
    return list((await ctx.session.execute(query.statement())).scalars())


async def get_scan(ctx: WorkspaceContext, scan_id: uuid.UUID) -> Scan:
    stmt = select(Scan).where(Scan.id == scan_id)
    scan = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if scan is None:
        raise NotFound("Scan not found")
    return scan


def scan_out(scan: Scan) -> dict[str, Any]:
    """Counts per severity and status always list every key (zero when absent)."""
    out = {c.key: getattr(scan, c.key) for c in Scan.__table__.columns if c.key != "workspace_id"}
    out["severity_counts"] = {s: int(scan.severity_counts.get(s, 0)) for s in SEVERITIES}
    out["status_counts"] = {s: int(scan.status_counts.get(s, 0)) for s in STATUSES}
    return out
