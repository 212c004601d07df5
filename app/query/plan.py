"""Compiled list queries: each query *shape* is built and compiled once, then run as a prepared
statement on the request's connection with only its values.

A list request costs far more in SQLAlchemy's per-execution machinery (statement construction,
cache-key generation, ORM compile state, the central loader criteria, result objects) than in
PostgreSQL. Here that work happens once per shape: a `ListQuery`'s `shape` (its resource, the
fields, operators and value shapes of its filters, its sort, whether and where its cursor holds
nulls) together with the context's `scope_key` (workspace present, visibility limited or not,
which row grants) names a compiled statement; a request then only parses its values and runs
`sql` with them.

Invariant (what makes a compiled statement safe to reuse): every value a request contributes
enters the statement as a named bound parameter (`Binder` hands them out, in the order the query
builds them, which is fixed for one shape), and so do the context's workspace id and visible
provider ids (`scope_options(bound=True)`, the same criteria the ORM hook adds to
every session statement). Every other part of the statement, including any parameter not handed
out here, depends only on the key (the resource's base select, the row-grant criteria, which are
memoized per roles and attribute values and named by `row_filter_key`). `tests/query` checks
both: a shape compiled for one set of values and run with another gives the rows the ORM path
gives, and no parameter outside the named ones changes with the values.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel
from sqlalchemy import bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import BindParameter

from app.db.session import scope_key, scope_options, scope_parameters
from app.db.transaction import Transaction
from app.query.queries import ListQuery

MAX_PLANS = 2048


def row_columns(entity: type, schema: type[BaseModel]) -> tuple[Any, ...]:
    """The entity's attributes named like the response schema's fields: a list's base select
    of exactly what it returns, as ORM attributes (so the central filter applies) that come
    back as plain rows."""
    return tuple(getattr(entity, name) for name in schema.model_fields)


class Binder:
    """Hands out the named bound parameters of one query, in the order it is built."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any, type_: Any) -> BindParameter[Any]:
        name = f"q{len(self.values)}"
        self.values[name] = value
        return bindparam(name, value, type_=type_)


@dataclass(frozen=True)
class Plan:
    """A compiled list query: its SQL, its parameters in order, and the values of those that
    are fixed by the key (with the driver-side conversion of any that needs one)."""

    sql: str
    names: tuple[str, ...]
    fixed: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]

    def arguments(self, values: dict[str, Any]) -> list[Any]:
        out = []
        for name in self.names:
            value = values[name] if name in values else self.fixed[name]
            process = self.processors.get(name)
            out.append(process(value) if process is not None and value is not None else value)
        return out


_PLANS: OrderedDict[tuple[Any, ...], Plan] = OrderedDict()


def compile_plan(query: ListQuery, info: dict[str, Any], dialect: Dialect) -> tuple[Plan, Binder]:
    """The plan of `query` under the context `info` (compiled on first use), and the query's
    own values."""
    if info.get("row_filters") and info.get("row_filter_key") is None:
        raise RuntimeError("row grants without their key cannot be compiled once and reused")
    binder = Binder()
    where, limit = query.bound_parts(binder)  # the values, parsed and bound on every request
    key = (query.shape, scope_key(info), dialect.name)
    plan = _PLANS.get(key)
    if plan is not None:
        _PLANS.move_to_end(key)
        return plan, binder
    statement = query.resource.base().where(*where).order_by(*query.order()).limit(limit)
    compiled = statement.options(*scope_options(info, bound=True)).compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True}
    )
    fixed = compiled.construct_params()  # the request's own values replace theirs
    processors: dict[str, Callable[[Any], Any]] = {
        name: proc  # type: ignore[misc]
        for name, proc in compiled._bind_processors.items()  # noqa: SLF001 - SQLAlchemy's own
        if isinstance(name, str) and callable(proc)
    }
    plan = Plan(str(compiled), tuple(compiled.positiontup or ()), dict(fixed), processors)
    _PLANS[key] = plan
    if len(_PLANS) > MAX_PLANS:
        _PLANS.popitem(last=False)
    return plan, binder


async def fetch_rows(tx: Transaction, query: ListQuery) -> list[asyncpg.Record]:
    """The rows of one page (plus one, to know whether there is a next page), by the selected
    columns' names, run on the request's connection."""
    plan, binder = compile_plan(query, tx.info, tx.dialect)
    values = {**scope_parameters(tx.info), **binder.values}
    return await tx.fetch(plan.sql, *plan.arguments(values))
