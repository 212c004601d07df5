"""JSON-OCSF Detection Findings (as written by `prowler ... --output-formats json-ocsf`) →
finding rows. Pure functions: no database, no I/O.

A report is a JSON array of records. A record that cannot be read as a finding (not an object,
no uid or check id, an unknown status, NUL characters or lone surrogates PostgreSQL cannot
store, nesting deeper than can be stored) makes the whole report invalid: `ReportError` names
the record and the problem. A record for another cloud account or provider is not an error; the
importer counts it as rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.db.models.scan import SEVERITIES, STATUSES

_SEVERITY_ALIASES = {"fatal": "critical", "unknown": "informational", "other": "informational"}
# OCSF severity_id: 1 informational .. 5 critical, 6 fatal.
_SEVERITY_IDS = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical", 6: "critical"}
LIMITS = {"check_id": 200, "region": 100, "resource_type": 200}


class ReportError(ValueError):
    """The report cannot be imported; the message says where and why."""


@dataclass(frozen=True)
class MappedFinding:
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
    compliance: str  # JSON text (jsonb parameters travel as text)
    remediation: str
    raw: str
    observed_at: datetime | None
    cloud_provider: str | None
    account_uid: str | None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        out = str(value).strip()
        return out or None
    return None


def _severity(record: dict[str, Any]) -> str:
    name = (_text(record.get("severity")) or "").lower()
    name = _SEVERITY_ALIASES.get(name, name)
    if name in SEVERITIES:
        return name
    severity_id = record.get("severity_id")
    return (
        _SEVERITY_IDS.get(severity_id, "informational")
        if isinstance(severity_id, int)
        else ("informational")
    )


def _observed_at(record: dict[str, Any]) -> datetime | None:
    """When the check ran (`time`, epoch seconds, or `time_dt`), in UTC; None when absent or
    outside what can be stored."""
    epoch = record.get("time")
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) and 0 < epoch < 1e11:
        return datetime.fromtimestamp(epoch, tz=UTC)
    text = _text(record.get("time_dt"))
    if text:
        try:
            parsed = datetime.fromisoformat(text)
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):
            return None
    return None


def _json(value: Any, where: str) -> str:
    try:
        out = orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        message = str(exc)
        if "surrogates" in message or "UTF-8" in message:
            raise ReportError(
                f"{where} contains text that is not valid Unicode (a lone surrogate)"
            ) from None
        if "ecursion" in message:
            raise ReportError(f"{where} is nested more than 254 levels deep") from None
        raise ReportError(f"{where} cannot be stored: {message[:120]}") from None
    if "\\u0000" in out:
        raise ReportError(f"{where} contains NUL characters, which cannot be stored")
    return out


def map_record(record: Any, index: int) -> MappedFinding:
    """One record → one finding; `index` (0-based) only names the record in errors."""
    where = f"record {index + 1}"
    if not isinstance(record, dict):
        raise ReportError(f"{where} is not a JSON object")
    info = _dict(record.get("finding_info"))
    uid = _text(info.get("uid"))
    if not uid:
        raise ReportError(f"{where} has no finding_info.uid")
    check_id = _text(_dict(record.get("metadata")).get("event_code"))
    if not check_id:
        raise ReportError(f"{where} has no metadata.event_code (the check id)")
    status = (_text(record.get("status_code")) or "").upper()
    if status not in STATUSES:
        raise ReportError(
            f"{where} has status_code {record.get('status_code')!r}, not one of "
            + ", ".join(STATUSES)
        )
    resources = record.get("resources")
    resource = _dict(resources[0]) if isinstance(resources, list) and resources else {}
    cloud = _dict(record.get("cloud"))
    mapped = MappedFinding(
        uid=uid,
        check_id=check_id,
        title=_text(info.get("title")) or _text(info.get("desc")) or check_id,
        severity=_severity(record),
        status=status,
        status_extended=_text(record.get("status_detail")),
        muted=_text(record.get("status")) == "Suppressed",
        region=_text(resource.get("region")) or _text(cloud.get("region")),
        resource_uid=_text(resource.get("uid")),
        resource_name=_text(resource.get("name")),
        resource_type=_text(resource.get("type")),
        compliance=_json(_dict(_dict(record.get("unmapped")).get("compliance")), where),
        remediation=_json(_dict(record.get("remediation")), where),
        raw=_json(record, where),
        observed_at=_observed_at(record),
        cloud_provider=(_text(cloud.get("provider")) or "").lower() or None,
        account_uid=_text(_dict(cloud.get("account")).get("uid")),
    )
    for field, limit in LIMITS.items():
        value = getattr(mapped, field)
        if value is not None and len(value) > limit:
            raise ReportError(f"{where}: {field} is longer than {limit} characters")
    return mapped


def belongs_to(finding: MappedFinding, provider_type: str, provider_uid: str) -> bool:
    """The record was written for this provider's cloud account."""
    return finding.cloud_provider == provider_type and finding.account_uid == provider_uid
