"""The query language's meaning, written again in plain Python, to hold the API against."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

PROVIDER_TYPES = {
    "id": "uuid",
    "provider_type": "enum",
    "uid": "string",
    "alias": "string",
    "region": "string",
    "created_at": "timestamp",
    "updated_at": "timestamp",
}


def ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Day:
    def __init__(self, d: date) -> None:
        self.start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        self.end = self.start + timedelta(days=1)


def typed(kind: str, raw: Any) -> Any:
    """A row's value or a query value, as the comparable Python value."""
    if raw is None:
        return None
    if kind == "uuid":
        return uuid.UUID(str(raw))
    if kind == "integer":
        return int(raw)
    if kind == "boolean":
        return raw if isinstance(raw, bool) else raw in ("true", "1")
    if kind == "timestamp":
        if isinstance(raw, str) and len(raw) == 10:
            return Day(date.fromisoformat(raw))
        return ts(raw) if isinstance(raw, str) else raw
    return raw


def _eq(x: Any, v: Any) -> bool:
    if x is None:
        return False
    if isinstance(v, Day):
        return v.start <= x < v.end
    return x == v


def _gte(x: Any, v: Any) -> bool:
    return x is not None and x >= (v.start if isinstance(v, Day) else v)


def _lte(x: Any, v: Any) -> bool:
    if x is None:
        return False
    return x < v.end if isinstance(v, Day) else x <= v


def matches(kind: str, x_raw: Any, op: str, raw: str) -> bool:
    """Does a row whose field holds `x_raw` match `field__op=raw`?"""
    x = typed(kind, x_raw)
    if op == "exists":
        return (x is not None) == (raw == "true")
    if op in ("in", "between"):
        values = [typed(kind, v) for v in json.loads(raw)]
        if op == "in":
            return any(_eq(x, v) for v in values)
        return _gte(x, values[0]) and _lte(x, values[1])
    v = typed(kind, raw)
    if op == "eq":
        return _eq(x, v)
    if op == "ne":
        return not _eq(x, v)
    if op == "startswith":
        return x is not None and x.startswith(v)
    if op == "contains":
        return x is not None and v in x
    if op == "notcontains":
        return x is None or v not in x
    if op == "gte":
        return _gte(x, v)
    if op == "lte":
        return _lte(x, v)
    if x is None:
        return False
    if op == "gt":
        return x >= v.end if isinstance(v, Day) else x > v
    if op == "lt":
        return x < (v.start if isinstance(v, Day) else v)
    raise AssertionError(op)


def select(
    rows: list[dict[str, Any]], types: dict[str, str], terms: list[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    return [r for r in rows if all(matches(types[f], r[f], op, v) for f, op, v in terms)]


def ordered(
    rows: list[dict[str, Any]], types: dict[str, str], sort: list[tuple[str, bool]], key: str = "id"
) -> list[dict[str, Any]]:
    """Rows in the API's order: each key ascending or descending, nulls last ascending and first
    descending, then `key` in the last key's direction."""
    if all(name != key for name, _ in sort):
        sort = [*sort, (key, sort[-1][1] if sort else False)]

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for name, desc in sort:
            x, y = typed(types[name], a[name]), typed(types[name], b[name])
            if x == y:
                continue
            if x is None or y is None:
                result = 1 if x is None else -1
            else:
                result = 1 if x > y else -1
            return -result if desc else result
        return 0

    return sorted(rows, key=functools.cmp_to_key(compare))
