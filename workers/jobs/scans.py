"""`scan.import`: stream a stored JSON-OCSF report into findings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from app.db.models import Provider, Scan, ScanUpload
from app.db.transaction import Transaction
from app.jobs import IMPORT_SCAN
from app.security.principal import WorkspaceContext
from app.services import ingest
from app.services.ocsf import ReportError
from app.services.tasks import abandon_scan
from workers.context import JobContext, JobFailed, Refused, job


async def _abandon(tx: Transaction, args: dict[str, Any], state: str, error: str) -> None:
    if "scan_id" in args:
        await abandon_scan(tx, uuid.UUID(args["scan_id"]), state, error)


@job(IMPORT_SCAN, on_abandon=_abandon)
async def import_scan(jc: JobContext, ctx: WorkspaceContext | None) -> dict[str, Any]:
    """All findings of the report are inserted in this one transaction (with the scan's
    counts and the task's success), so a failure at any record leaves nothing behind."""
    assert ctx is not None
    session = ctx.session
    scan_id = uuid.UUID(jc.args["scan_id"])
    scan = (await session.execute(select(Scan).where(Scan.id == scan_id))).scalar_one_or_none()
    if scan is None:
        raise Refused("The scan's provider is no longer visible to the user")
    provider = (
        await session.execute(
            select(Provider).where(Provider.id == scan.provider_id, Provider.deleted_at.is_(None))
        )
    ).scalar_one_or_none()
    if provider is None:
        raise Refused("The scan's provider was deleted or is no longer visible to the user")
    total = (
        await session.execute(
            select(func.coalesce(func.sum(func.length(ScanUpload.data)), 0)).where(
                ScanUpload.scan_id == scan_id
            )
        )
    ).scalar_one()
    async with jc.transaction() as marker:  # visible at once, outside the import transaction
        await marker.session.execute(
            update(Scan)
            .where(Scan.id == scan_id)
            .values(state="running", started_at=datetime.now(UTC))
        )

    async def progress(read: int, stats: ingest.ImportStats) -> None:
        percent = int(read * 100 / total) if total else 0
        await jc.progress(
            min(percent, 99),
            {
                "bytes_read": read,
                "bytes_total": int(total),
                "records": stats.records,
                "imported": stats.imported,
                "rejected": stats.rejected,
                "duplicates": stats.duplicates,
            },
        )

    try:
        # The upload is read on a second connection (same context, re-checked) so that
        # parsing can go on while the import connection inserts the previous batch.
        async with jc.transaction() as reading:
            stats = await ingest.import_report(
                ctx,
                ingest.upload_chunks(reading, scan_id),
                scan,
                provider,
                batch_size=jc.settings.import_batch_size,
                progress=progress,
            )
    except ReportError as exc:
        raise JobFailed(f"The report could not be imported: {exc}") from None
    if stats.records and stats.rejected == stats.records:
        raise JobFailed(
            f"Every record was rejected: the report holds account(s) "
            f"{', '.join(stats.rejected_accounts)}, not this scan's provider "
            f"{provider.provider_type}:{provider.uid}"
        )
    return {"scan_id": str(scan_id), **stats.result()}
