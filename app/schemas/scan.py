from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.schemas.common import Output


class ScanOut(Output):
    __resource__ = "scan"
    id: uuid.UUID
    provider_id: uuid.UUID
    task_id: uuid.UUID | None
    state: str
    file_name: str
    file_size: int
    file_sha256: str
    findings_count: int
    rejected_count: int
    duplicate_count: int
    severity_counts: dict[str, int]
    status_counts: dict[str, int]
    error: str | None
    created_by: uuid.UUID
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class FindingOut(Output):
    __resource__ = "finding"
    id: uuid.UUID
    scan_id: uuid.UUID
    provider_id: uuid.UUID
    uid: str
    check_id: str
    title: str
    severity: str
    status: str
    status_extended: str | None
    muted: bool
    region: str | None
    resource_uid: str | None
    resource_name: str | None
    resource_type: str | None
    compliance: dict[str, Any]
    remediation: dict[str, Any]
    observed_at: datetime | None
    inserted_at: datetime


class FindingDetail(FindingOut):
    raw: dict[str, Any]
