"""Import a stored JSON-OCSF report into findings, streaming, in batches, under RLS.

Invariant: the report is never loaded whole — chunks are read one at a time from
`scan_upload` and fed to an incremental JSON reader, and findings go to the database in batches
of `batch_size` rows, as multi-row INSERT statements, on the job's own connection (so inside its
transaction, with its `SET LOCAL` context; COPY is refused under RLS). The caller's
transaction holds every batch: a report that turns out malformed halfway leaves nothing behind.
Finding ids are UUIDv7 made at insert time, so rows land in the current month's partition.
While one batch is being inserted the next one is parsed (the upload is read on a second
connection of the same job context).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, select, update

from app.db.models import Provider, Scan, ScanUpload
from app.db.models.scan import SEVERITIES, STATUSES
from app.db.partitions import uuid7_at, uuid7_time
from app.security.principal import WorkspaceContext
from app.services.json_stream import JsonArrayReader, JsonStreamError
from app.services.ocsf import MappedFinding, ReportError, belongs_to, map_record

COLUMNS = (
    "workspace_id",
    "id",
    "scan_id",
    "provider_id",
    "uid",
    "check_id",
    "title",
    "severity",
    "status",
    "status_extended",
    "muted",
    "region",
    "resource_uid",
    "resource_name",
    "resource_type",
    "compliance",
    "remediation",
    "raw",
    "observed_at",
    "inserted_at",
)
# Rows per INSERT statement: one multi-row VALUES statement costs the server one parse (the
# statement is prepared once per row count) and one executor start for all its rows, where a
# row-by-row `executemany` pays them per row. COPY and INSERT … SELECT FROM unnest(…) would
# be cheaper still, but COPY is refused under RLS and neither works on Citus (SPEC section 2).
ROWS_PER_STATEMENT = 100


@lru_cache(maxsize=8)
def insert_sql(rows: int) -> str:
    """`INSERT INTO finding (COLUMNS) VALUES (…), (…), …` for `rows` rows of parameters."""
    width = len(COLUMNS)
    values = ", ".join(
        "(" + ", ".join(f"${r * width + c}" for c in range(1, width + 1)) + ")" for r in range(rows)
    )
    return f"INSERT INTO finding ({', '.join(COLUMNS)}) VALUES {values}"


def insert_statements(rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, list[Any]]]:
    """The statements (and their parameters) that insert `rows`, `ROWS_PER_STATEMENT` at a
    time."""
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        part = rows[start : start + ROWS_PER_STATEMENT]
        yield insert_sql(len(part)), [v for row in part for v in row]


MAX_REJECTED_SAMPLES = 5

Progress = Callable[[int, "ImportStats"], Awaitable[None]]


@dataclass
class ImportStats:
    records: int = 0
    imported: int = 0
    rejected: int = 0
    duplicates: int = 0
    severity: Counter[str] = field(default_factory=Counter)
    status: Counter[str] = field(default_factory=Counter)
    rejected_accounts: list[str] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "imported": self.imported,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "severity_counts": {s: self.severity.get(s, 0) for s in SEVERITIES},
            "status_counts": {s: self.status.get(s, 0) for s in STATUSES},
            "rejected_accounts": self.rejected_accounts,
        }


async def upload_chunks(ctx: WorkspaceContext, scan_id: uuid.UUID) -> AsyncIterator[bytes]:
    """The stored report, one chunk at a time (only one chunk is in memory)."""
    session = ctx.session
    count = (
        await session.execute(select(func.count()).where(ScanUpload.scan_id == scan_id))
    ).scalar_one()
    for seq in range(count):
        chunk = (
            await session.execute(
                select(ScanUpload.data).where(ScanUpload.scan_id == scan_id, ScanUpload.seq == seq)
            )
        ).scalar_one_or_none()
        if chunk is None:
            raise ReportError(f"the stored upload is missing part {seq + 1} of {count}")
        yield chunk


def finding_row(
    workspace_id: uuid.UUID,
    finding_id: uuid.UUID,
    scan_id: uuid.UUID,
    provider_id: uuid.UUID,
    f: MappedFinding,
) -> tuple[Any, ...]:
    """One finding as the values of `COLUMNS` (its insert time is read off its UUIDv7 id)."""
    return (
        workspace_id,
        finding_id,
        scan_id,
        provider_id,
        f.uid,
        f.check_id,
        f.title,
        f.severity,
        f.status,
        f.status_extended,
        f.muted,
        f.region,
        f.resource_uid,
        f.resource_name,
        f.resource_type,
        f.compliance,
        f.remediation,
        f.raw,
        f.observed_at,
        uuid7_time(finding_id),
    )


class _Batcher:
    """Collects rows and inserts them a batch at a time. One batch may be in flight while the
    next is parsed (the insert waits on the database, the parsing needs the CPU), so the
    reading of the upload must use another connection than this one."""

    def __init__(self, ctx: WorkspaceContext, scan: Scan, size: int) -> None:
        self.ctx, self.scan, self.size = ctx, scan, size
        self.rows: list[tuple[Any, ...]] = []
        self.inserted = 0
        self._inflight: asyncio.Task[None] | None = None

    def add(self, f: MappedFinding) -> None:
        finding_id = uuid7_at(time.time_ns() // 1_000_000)
        self.rows.append(
            finding_row(self.scan.workspace_id, finding_id, self.scan.id, self.scan.provider_id, f)
        )

    async def submit(self) -> None:
        """Start inserting the collected rows (after the previous batch has finished)."""
        await self.wait()
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        self._inflight = asyncio.create_task(self._insert(rows))

    async def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        for sql, args in insert_statements(rows):
            await self.ctx.tx.execute(sql, *args)
        self.inserted += len(rows)

    async def wait(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def drain(self) -> None:
        """On failure: let the in-flight insert end before the transaction rolls back."""
        task, self._inflight = self._inflight, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task


async def import_report(
    ctx: WorkspaceContext,
    chunks: AsyncIterator[bytes],
    scan: Scan,
    provider: Provider,
    *,
    batch_size: int,
    progress: Progress,
) -> ImportStats:
    """Stream `chunks` (the stored upload, read on another connection) into findings in
    `ctx`'s transaction; update the scan and free the upload."""
    stats = ImportStats()
    seen: set[bytes] = set()
    batch = _Batcher(ctx, scan, batch_size)
    reader = JsonArrayReader()
    read = 0
    try:
        async for chunk in chunks:
            read += len(chunk)
            await _take(reader.feed(chunk), stats, seen, batch, provider)
            await progress(read, stats)
        if read == 0:
            raise ReportError("the report is empty")
        await _take(reader.close(), stats, seen, batch, provider)
        await batch.submit()
        await batch.wait()
    except JsonStreamError as exc:
        raise ReportError(
            "a JSON-OCSF report is a JSON array of findings; this file is not"
            if "not a JSON array" in str(exc)
            else f"the report is not valid JSON after {stats.records} records ({exc})"
        ) from None
    finally:
        await batch.drain()
    stats.imported = batch.inserted
    await _finish_scan(ctx, scan, stats)
    return stats


async def _take(
    items: Iterable[Any],
    stats: ImportStats,
    seen: set[bytes],
    batch: _Batcher,
    provider: Provider,
) -> None:
    for record in items:
        finding = map_record(record, stats.records)
        stats.records += 1
        if not belongs_to(finding, provider.provider_type, provider.uid):
            stats.rejected += 1
            account = f"{finding.cloud_provider}:{finding.account_uid}"
            if (
                len(stats.rejected_accounts) < MAX_REJECTED_SAMPLES
                and account not in stats.rejected_accounts
            ):
                stats.rejected_accounts.append(account)
            continue
        key = hashlib.blake2b(finding.uid.encode(), digest_size=16).digest()
        if key in seen:
            stats.duplicates += 1
            continue
        seen.add(key)
        stats.severity[finding.severity] += 1
        stats.status[finding.status] += 1
        batch.add(finding)
        if len(batch.rows) >= batch.size:
            await batch.submit()


async def _finish_scan(ctx: WorkspaceContext, scan: Scan, stats: ImportStats) -> None:
    session = ctx.session
    result = stats.result()
    await session.execute(
        update(Scan)
        .where(Scan.id == scan.id)
        .values(
            state="completed",
            completed_at=func.statement_timestamp(),
            findings_count=stats.imported,
            rejected_count=stats.rejected,
            duplicate_count=stats.duplicates,
            severity_counts=result["severity_counts"],
            status_counts=result["status_counts"],
            error=None,
        )
    )
    await session.execute(delete(ScanUpload).where(ScanUpload.scan_id == scan.id))
