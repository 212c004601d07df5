"""Findings: the list speaks the workspace-wide query language. The time range on
`inserted_at` is a range on the UUIDv7 id, so PostgreSQL prunes the monthly partitions it does
not need."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy import select

from app.db.models import Finding
from app.db.models.scan import SEVERITIES, STATUSES
from app.errors import NotFound
from app.query import Boolean, Enum, Field, IdTime, ListQuery, Resource, Text, Uuid
from app.query.plan import fetch_rows, row_columns
from app.schemas.scan import FindingOut
from app.security.principal import WorkspaceContext

FINDINGS = Resource(
    name="finding",
    base=lambda: select(*row_columns(Finding, FindingOut)),  # not the raw record
    fields={
        "id": Field(Finding.id, Uuid()),
        "severity": Field(Finding.severity, Enum(SEVERITIES)),
        "status": Field(Finding.status, Enum(STATUSES)),
        "check_id": Field(Finding.check_id, Text()),
        "title": Field(Finding.title, Text()),
        "region": Field(Finding.region, Text(), nullable=True),
        "resource_uid": Field(Finding.resource_uid, Text(), nullable=True),
        "resource_type": Field(Finding.resource_type, Text(), nullable=True),
        "provider_id": Field(Finding.provider_id, Uuid()),
        "scan_id": Field(Finding.scan_id, Uuid()),
        "muted": Field(Finding.muted, Boolean()),
        # The import time as a range of UUIDv7 ids: partitions outside it are pruned.
        "inserted_at": Field(Finding.id, IdTime(), sortable=False),
    },
)


async def list_findings(ctx: WorkspaceContext, query: ListQuery) -> list[asyncpg.Record]:
    """Rows with FindingOut's fields, through the compiled-query path."""
    return await fetch_rows(ctx.tx, query)


async def get_finding(ctx: WorkspaceContext, finding_id: uuid.UUID) -> Finding:
    finding = (
        await ctx.session.execute(select(Finding).where(Finding.id == finding_id))
    ).scalar_one_or_none()
    if finding is None:
        raise NotFound("Finding not found")
    return finding
