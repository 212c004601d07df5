"""Scans (an imported findings report) and findings (range-partitioned by UUIDv7 id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import HAS_PROVIDER, Base, ScopedEntity, WorkspaceScoped, belongs_to

SCAN_STATES = ("pending", "running", "completed", "failed", "refused", "cancelled")
SEVERITIES = ("critical", "high", "medium", "low", "informational")
STATUSES = ("FAIL", "PASS", "MANUAL")


class Scan(ScopedEntity, Base):
    """One uploaded report for one provider; counts are filled in when the import commits."""

    __tablename__ = "scan"
    __provider__ = HAS_PROVIDER
    # Report files are named after the account (`prowler-output-<account>-…`); errors name
    # the accounts a report holds.
    __embeds__ = {"uid": ("file_name", "error")}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
    )

    provider_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    # FK to task, declared in the migrations; task retention clears it before the task goes.
    task_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    file_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), nullable=False
    )
    findings_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    severity_counts: Mapped[dict[str, int]] = mapped_column(JSONB, nullable=False, default=dict)
    status_counts: Mapped[dict[str, int]] = mapped_column(JSONB, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScanUpload(WorkspaceScoped, Base):
    """The uploaded report, in chunks, until its import ends (API and worker share no disk)."""

    __tablename__ = "scan_upload"
    __provider__ = belongs_to("scan", "scan_id")
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "scan_id"], ["scan.workspace_id", "scan.id"], ondelete="CASCADE"
        ),
    )

    scan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Finding(ScopedEntity, Base):
    """One OCSF Detection Finding. Partitioned by `id` (UUIDv7) per month; written in bulk by
    the import job with multi-row statements under RLS, never with COPY."""

    __tablename__ = "finding"
    __provider__ = HAS_PROVIDER
    # The report is about the provider's account: its id appears in finding uids, resource
    # ARNs, names and messages, and in the raw record.
    __embeds__ = {"uid": ("uid", "resource_uid", "resource_name", "status_extended", "raw")}
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id", "scan_id"], ["scan.workspace_id", "scan.id"]),
        ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
        {"postgresql_partition_by": "RANGE (id)"},
    )

    scan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    provider_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    uid: Mapped[str] = mapped_column(Text, nullable=False)
    check_id: Mapped[str] = mapped_column(String(200), nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    status_extended: Mapped[str | None] = mapped_column(Text)
    muted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    region: Mapped[str | None] = mapped_column(String(100))
    resource_uid: Mapped[str | None] = mapped_column(Text)
    resource_name: Mapped[str | None] = mapped_column(Text)
    resource_type: Mapped[str | None] = mapped_column(String(200))
    compliance: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    remediation: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    inserted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
