"""Findings: the list, with its filters declared in one table (`FILTERS`).

Every filter is `field=value` or `field__op=value` (the syntax of the workspace-wide query
language, SPEC section 6), parsed into bound parameters; an unknown field, operator or a bad
value is a 400 naming it. The time range on `inserted_at` becomes a range on the UUIDv7 id, so
PostgreSQL prunes the monthly partitions it does not need.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.db.models import Finding
from app.db.models.scan import SEVERITIES, STATUSES
from app.db.partitions import floor_uuid7
from app.errors import BadRequest, NotFound

Parse = Callable[[str], Any]


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Parse:
    def parse(value: str) -> str:
        value = value.upper() if upper else value.lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _text(value: str) -> str:
    if not value or len(value) > 300:
        raise ValueError("must be 1 to 300 characters")
    return value


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ValueError("must be true or false")


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filter:
    column: InstrumentedAttribute[Any]
    parse: Parse
    ops: tuple[str, ...] = ("eq", "in")


FILTERS: dict[str, Filter] = {
    "severity": Filter(Finding.severity, _choice(SEVERITIES)),
    "status": Filter(Finding.status, _choice(STATUSES, upper=True)),
    "check_id": Filter(Finding.check_id, _text),
    "region": Filter(Finding.region, _text),
    "provider_id": Filter(Finding.provider_id, uuid.UUID),
    "scan_id": Filter(Finding.scan_id, uuid.UUID),
    "muted": Filter(Finding.muted, _bool, ops=("eq",)),
    # Partition-pruning time range: inserted_at__gte / inserted_at__lt (ISO 8601).
    "inserted_at": Filter(Finding.id, _instant, ops=("gte", "lt")),
}
PAGING = frozenset({"limit", "cursor"})
MAX_IN = 100


def _values(name: str, flt: Filter, op: str, raw: str) -> Any:
    try:
        if op != "in":
            return flt.parse(raw)
        values = orjson.loads(raw)
        if not isinstance(values, list) or not values or len(values) > MAX_IN:
            raise ValueError(f"must be a JSON list of 1 to {MAX_IN} values")
        return [flt.parse(str(v)) for v in values]
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest(f"Invalid value for '{name}': {exc}") from None


def apply_filters(stmt: Select[Any], params: Mapping[str, str]) -> Select[Any]:
    """Add the query's filters to `stmt` (400 on anything not declared in FILTERS)."""
    for name, raw in params.items():
        if name in PAGING:
            continue
        field, _, op = name.partition("__")
        flt = FILTERS.get(field)
        op = op or "eq"
        if flt is None:
            raise BadRequest(
                f"Unknown filter '{field}'; filterable fields: {', '.join(sorted(FILTERS))}"
            )
        if op not in flt.ops:
            raise BadRequest(f"'{field}' supports {', '.join(flt.ops)}, not '{op}'")
        value = _values(name, flt, op, raw)
        if field == "inserted_at":
            value = floor_uuid7(value)
        stmt = stmt.where(_condition(flt.column, op, value))
    return stmt


def _condition(column: Any, op: str, value: Any) -> Any:
    if op == "in":
        return column.in_(value)
    if op == "gte":
        return column >= value
    if op == "lt":
        return column < value
    return column == value


async def list_findings(
    session: AsyncSession, limit: int, after: uuid.UUID | None, params: Mapping[str, str]
) -> list[Finding]:
    stmt = apply_filters(select(Finding).order_by(Finding.id).limit(limit), params)
    if after is not None:
        stmt = stmt.where(Finding.id > after)
    return list((await session.execute(stmt)).scalars())


async def get_finding(session: AsyncSession, finding_id: uuid.UUID) -> Finding:
    finding = (
        await session.execute(select(Finding).where(Finding.id == finding_id))
    ).scalar_one_or_none()
    if finding is None:
        raise NotFound("Finding not found")
    return finding
