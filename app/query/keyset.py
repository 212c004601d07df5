"""Keyset pagination: the ORDER BY terms of a sort and the condition "after the cursor".

A nullable field sorts as (is null, value): nulls last ascending, first descending, and the
keyset stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import Boolean as SQLBoolean
from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from app.query.filters import Bind

if TYPE_CHECKING:
    from app.query.queries import SortKey


def row_value(row: Any, name: str) -> Any:
    if isinstance(row, Mapping | asyncpg.Record):
        return row[name]
    mapping = getattr(row, "_mapping", None)
    if mapping is not None:
        return mapping[name]
    return getattr(row, name)


Component = tuple[Any, bool, Any, Any]  # expression, descending, cursor value, SQL type


def components(sort: Sequence[SortKey], after: list[Any] | None) -> list[Component]:
    """(expression, descending, cursor value, type) per ORDER BY term. A nullable field sorts
    as (is null, value): nulls last ascending, first descending, and the keyset stays exact."""
    out: list[Component] = []
    for i, k in enumerate(sort):
        v = after[i] if after is not None else None
        if k.field.nullable:
            out.append((k.field.column.is_(None), k.desc, v is None, SQLBoolean()))
        out.append((k.field.sort_expr, k.desc, v, k.field.column.type))
    return out


def beyond(components: list[Component], bind: Bind) -> ColumnElement[bool]:
    """Rows strictly after the cursor in the sort order: OR over i of (all earlier terms equal
    AND term i beyond the cursor). A null cursor value has nothing beyond it in its own term."""
    terms = []
    for i, (expr, desc, value, sql_type) in enumerate(components):
        if value is None:
            continue
        equal = [e.is_(None) if v is None else e == bind(v, t) for e, _, v, t in components[:i]]
        bound = bind(value, sql_type)
        beyond = expr < bound if desc else expr > bound
        terms.append(and_(*equal, beyond))
    return or_(*terms)
