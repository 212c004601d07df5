"""One filter term: `field__op=value` parsed against a field, then turned into a SQL condition.

Every value becomes a bound parameter; `startswith`/`contains`/`notcontains` escape `%`, `_`
and the escape character `/`, so they match literally. Negative operators
(`ne`, `notcontains`) also match rows where the field is null, as "not equal to x" reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, and_, any_, bindparam, false, not_, or_
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from app.query.types import Day, FieldType

OPERATORS = (
    "eq",
    "ne",
    "in",
    "startswith",
    "contains",
    "notcontains",
    "exists",
    "gt",
    "lt",
    "gte",
    "lte",
    "between",
)
MAX_JSON = 20_000


@dataclass(frozen=True)
class Field:
    """A filterable (and, unless `sortable=False`, sortable) field of a list resource."""

    column: Any  # an ORM attribute or an SQL expression over the resource's base select
    type: FieldType
    nullable: bool = False
    sortable: bool = True

    @property
    def sort_expr(self) -> Any:
        """Text sorts and compares in code-point order ("C"), whatever the database locale."""
        return self.column.collate("C") if self.type.text_like else self.column


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a value")


def _json_list(raw: str) -> list[Any]:
    if len(raw) > MAX_JSON:
        raise ValueError(f"takes at most {MAX_JSON} characters")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list):
        raise ValueError('expects a JSON list, e.g. ["a", "b"]')
    return value


def parse_items(field: Field, items: list[Any], cap: int) -> list[Any]:
    """Elements of a JSON list (the `in` operator, the search body), each parsed to the field's
    type and checked against its column."""
    if len(items) > cap:
        raise ValueError(f"takes at most {cap} values, got {len(items)}")
    out = []
    for item in items:
        if item is None:
            raise ValueError("null is not a value; use __exists=false to find missing values")
        out.append(_fits(field, field.type.parse_json(item)))
    return out


def parse_value(field: Field, op: str, raw: str, cap: int) -> Any:
    if op == "exists":
        if raw.strip().lower() not in ("true", "false"):
            raise ValueError("takes true or false")
        return raw.strip().lower() == "true"
    if op == "in":
        return parse_items(field, _json_list(raw), cap)
    if op == "between":
        items = _json_list(raw)
        if len(items) != 2:
            raise ValueError("expects a JSON list of two values, [low, high]")
        return parse_items(field, items, 2)
    return _fits(field, field.type.parse_text(raw))


def _fits(field: Field, value: Any) -> Any:
    field.type.check(value, field.column.type)
    return value


Bind = Callable[[Any, Any], Any]  # (value, SQL type) -> the bound parameter that carries it


def inline(value: Any, type_: Any) -> BindParameter[Any]:
    """An anonymous bound parameter (a query run through the ORM session)."""
    return bindparam(None, value, type_=type_, unique=True)


def _like(text: str) -> str:
    """`text` for LIKE with `/` as the escape character: `%`, `_` and `/` match literally."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def condition(field: Field, op: str, value: Any, bind: Bind = inline) -> ColumnElement[bool]:
    """The SQL condition for one parsed term. Every value goes through `bind`, in a fixed order
    for a given (field, operator, value shape), so a compiled query can be reused for any values
    of the same shape."""
    col, ordered = field.column, field.sort_expr
    sql_type = col.type
    if op == "exists":
        return col.isnot(None) if value else col.is_(None)
    if op == "eq":
        if isinstance(value, Day):
            return and_(col >= bind(value.start, sql_type), col < bind(value.end, sql_type))
        return col == bind(value, sql_type)
    if op == "ne":
        return or_(col.is_(None), not_(condition(field, "eq", value, bind)))
    if op == "in":
        if not value:
            return false()
        if any(isinstance(v, Day) for v in value):
            return or_(*(condition(field, "eq", v, bind) for v in value))
        return col == any_(bind(list(value), ARRAY(sql_type)))
    if op == "startswith":
        return col.like(bind(_like(value) + "%", sql_type), escape="/")
    if op == "contains":
        return col.like(bind("%" + _like(value) + "%", sql_type), escape="/")
    if op == "notcontains":
        return or_(
            col.is_(None), not_(col.like(bind("%" + _like(value) + "%", sql_type), escape="/"))
        )
    if op == "between":
        low, high = value
        return and_(condition(field, "gte", low, bind), condition(field, "lte", high, bind))
    day = isinstance(value, Day)
    if op == "gt":
        return ordered >= bind(value.end, sql_type) if day else ordered > bind(value, sql_type)
    if op == "gte":
        return ordered >= bind(value.start if day else value, sql_type)
    if op == "lt":
        return ordered < bind(value.start if day else value, sql_type)
    if op == "lte":
        return ordered < bind(value.end, sql_type) if day else ordered <= bind(value, sql_type)
    raise ValueError(f"unknown operator {op}")


def value_shape(op: str, value: Any) -> Any:
    """What of a parsed value decides the SQL `condition` builds (the values themselves are
    bound): part of a compiled query's key."""
    if op == "exists":
        return bool(value)
    if isinstance(value, list):
        if op == "in" and value and not any(isinstance(v, Day) for v in value):
            return "array"
        return tuple(value_shape("eq", v) for v in value) or "empty"
    return type(value).__name__ if isinstance(value, Day) else "value"
