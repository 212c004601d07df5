"""A parsed list request: its filter terms, sort, search values and cursor, turned into the
page's SQL and the page itself.

Every value a query contributes goes through one `bind` callable, in a fixed order per `shape`,
so a statement compiled for one request can serve any other of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy import Integer as SQLInteger
from sqlalchemy import Select
from sqlalchemy.sql.elements import ColumnElement

from app.errors import BadRequest
from app.query import cursor as cursors
from app.query.filters import (
    OPERATORS,
    Bind,
    Field,
    condition,
    inline,
    parse_items,
    parse_value,
    value_shape,
)
from app.query.keyset import beyond, components, row_value
from app.query.types import describe_ops

if TYPE_CHECKING:
    from app.query.resource import Resource

RESERVED = frozenset({"limit", "cursor", "sort"})
MAX_SORT_KEYS = 4
MAX_SEARCH_VALUES = 1000


class RequestValues:
    """What every query takes from the request: query items, path parameters, page size, cursor
    and the cursor signing key."""

    def __init__(self, request: Request, limit: int | None, cursor: str | None) -> None:
        settings = request.app.state.settings
        cap: int = settings.max_page_size
        if limit is not None and not 1 <= limit <= cap:
            raise BadRequest(f"limit must be between 1 and {cap}")
        self.limit = limit if limit is not None else min(50, cap)
        self.cursor = cursor
        self.params = list(request.query_params.multi_items())
        self.path_params = dict(request.path_params)
        self.key = cursors.cursor_key(settings.jwt_secret.get_secret_value())


@dataclass(frozen=True)
class SortKey:
    name: str
    field: Field
    desc: bool

    @property
    def spec(self) -> str:
        return ("-" if self.desc else "") + self.name


def _split(key: str) -> tuple[str, str]:
    name, sep, op = key.rpartition("__")
    return (name, op) if sep else (key, "eq")


class _BaseQuery:
    def __init__(self, resource: Resource, req: RequestValues) -> None:
        self.resource = resource
        self.limit, self.cursor, self.key = req.limit, req.cursor, req.key
        self.params, self.path_params = req.params, req.path_params

    @cached_property
    def terms(self) -> tuple[Term, ...]:
        """Path filters (path parameters naming a field) first; a query parameter on the same
        field is ignored, because the path wins. Then the query parameters. Parsed on first use
        (inside the handler, under the caller's field rules)."""
        out, seen = [], set()
        path_fields = {
            n: v
            for n, v in self.path_params.items()
            if n in self.resource.fields and n not in ("slug", "field")
        }
        for name, raw in path_fields.items():
            out.append(self._term(name, "eq", raw, self.resource.fields[name]))
        for key, raw in self.params:
            if key in RESERVED:
                continue
            if key in seen:
                base = _split(key)[0]
                raise BadRequest(f"'{key[:60]}' is given more than once; use {base[:60]}__in=[...]")
            seen.add(key)
            name, op = _split(key)
            if name in path_fields:
                continue
            out.append(self._term(name, op, raw, None))
        return tuple(out)

    def conditions(self, bind: Bind = inline) -> list[ColumnElement[bool]]:
        return [condition(t.field, t.op, t.value, bind) for t in self.terms]

    def _term(self, name: str, op: str, raw: str, fixed: Field | None) -> Term:
        f = fixed or self.resource.field(name)
        key = name if op == "eq" else f"{name}__{op[:30]}"
        if op not in OPERATORS:
            raise BadRequest(
                f"unknown operator '{op[:30]}' in '{key}'; operators: {', '.join(OPERATORS)}"
            )
        if op != "eq" and op not in f.type.ops:
            raise BadRequest(
                f"operator '{op}' does not apply to '{name}' ({f.type.name}); "
                f"it takes: {describe_ops(f.type.ops)}"
            )
        try:
            value = parse_value(f, op, raw, self.resource.max_in)
        except ValueError as exc:
            raise BadRequest(f"'{key}': {exc}") from None
        return Term(name, f, op, value)


@dataclass(frozen=True)
class Term:
    """One parsed filter: `name__op=value` with the value parsed to the field's type."""

    name: str
    field: Field
    op: str
    value: Any

    @property
    def shape(self) -> tuple[str, str, Any]:
        return (self.name, self.op, value_shape(self.op, self.value))


class ListQuery(_BaseQuery):
    """A parsed list request. `statement()` is the page's select; `page(rows)` the envelope.

    Nothing is checked against the field rules until `statement()` runs (in the handler)."""

    def __init__(
        self,
        resource: Resource,
        req: RequestValues,
        sort: str | None,
        search: tuple[str, list[Any]] | None = None,
    ) -> None:
        super().__init__(resource, req)
        self.sort_param = sort
        self.search = search

    @cached_property
    def sort(self) -> tuple[SortKey, ...]:
        specs = self.sort_param.split(",") if self.sort_param else list(self.resource.default_sort)
        if len(specs) > MAX_SORT_KEYS:
            raise BadRequest(f"sort takes at most {MAX_SORT_KEYS} fields")
        keys: list[SortKey] = []
        for spec in specs:
            spec = spec.strip()
            desc = spec.startswith("-")
            name = spec.lstrip("+-")
            if not name:
                raise BadRequest("sort has an empty field; e.g. sort=-created_at,name")
            f = self.resource.field(name, kind="sortable")
            if any(k.name == name for k in keys):
                raise BadRequest(f"sort names '{name}' twice")
            keys.append(SortKey(name, f, desc))
        if all(k.name != self.resource.key for k in keys):
            key_field = self.resource.fields[self.resource.key]
            keys.append(SortKey(self.resource.key, key_field, keys[-1].desc if keys else False))
        return tuple(keys)

    @cached_property
    def search_term(self) -> Term | None:
        if self.search is None:
            return None
        name, values = self.search
        f = self.resource.field(name, kind="searchable")
        try:
            items = parse_items(f, values, MAX_SEARCH_VALUES)
        except ValueError as exc:
            raise BadRequest(f"search on '{name[:60]}': {exc}") from None
        return Term(name, f, "in", items)

    @property
    def _scope(self) -> str:
        return f"{self.resource.name}:{','.join(k.spec for k in self.sort)}"

    @cached_property
    def after(self) -> list[Any] | None:
        """The cursor's sort-key values (None without a cursor)."""
        if self.cursor is None:
            return None
        values = cursors.decode(self.key, self._scope, self.cursor)
        if len(values) != len(self.sort):
            raise BadRequest(cursors.INVALID)
        out = []
        for k, v in zip(self.sort, values, strict=True):
            if v is None and not k.field.nullable:
                raise BadRequest(cursors.INVALID)
            try:
                out.append(None if v is None else k.field.type.from_cursor(v))
            except ValueError:
                raise BadRequest(cursors.INVALID) from None
        return out

    @property
    def shape(self) -> tuple[Any, ...]:
        """Everything that decides this query's SQL, none of its values: two queries of one
        shape differ only in bound parameters (the key of a compiled plan)."""
        search = self.search_term
        return (
            self.resource.name,
            tuple(t.shape for t in self.terms),
            search.shape if search is not None else None,
            tuple(k.spec for k in self.sort),
            None if self.after is None else tuple(v is None for v in self.after),
        )

    def bound_parts(self, bind: Bind) -> tuple[list[ColumnElement[bool]], Any]:
        """The WHERE conditions (filters, search, after the cursor) and the LIMIT (one more row
        than the page, to know whether a next page exists). Every value goes through `bind`,
        always in the same order for one `shape`."""
        where = self.conditions(bind)
        search = self.search_term
        if search is not None:
            where.append(condition(search.field, "in", search.value, bind))
        if self.after is not None:
            where.append(beyond(components(self.sort, self.after), bind))
        return where, bind(self.limit + 1, SQLInteger())

    def order(self) -> list[Any]:
        return [
            expr.desc() if desc else expr.asc()
            for expr, desc, _, _ in components(self.sort, self.after)
        ]

    def statement(self, base: Select[Any] | None = None, bind: Bind = inline) -> Select[Any]:
        """The resource's base select (or `base`), filtered, sorted, after the cursor, limited."""
        where, limit = self.bound_parts(bind)
        stmt = base if base is not None else self.resource.base()
        return stmt.where(*where).order_by(*self.order()).limit(limit)

    def page(self, rows: Sequence[Any]) -> dict[str, Any]:
        """`{"data": rows[:limit], "next_cursor": ...}`; rows may be entities or mappings."""
        data = list(rows[: self.limit])
        next_cursor = None
        if len(rows) > self.limit:
            last = data[-1]
            values = []
            for k in self.sort:
                v = row_value(last, k.name)
                values.append(None if v is None else k.field.type.to_cursor(v))
            next_cursor = cursors.encode(self.key, self._scope, values)
        return {"data": data, "next_cursor": next_cursor}


class DistinctQuery(_BaseQuery):
    """The distinct non-null values of one field among the rows the caller may see (and that
    match the query's filters), ascending, paged."""

    def __init__(self, resource: Resource, req: RequestValues, field_name: str) -> None:
        super().__init__(resource, req)
        self.field_name = field_name

    @cached_property
    def field(self) -> Field:
        return self.resource.field(self.field_name, kind="filterable")

    @property
    def _scope(self) -> str:
        return f"{self.resource.name}:distinct:{self.field_name}"

    def statement(self) -> Select[Any]:
        if any(k == "sort" for k, _ in self.params):
            raise BadRequest("distinct values are listed in ascending order; sort does not apply")
        expr = self.field.sort_expr
        stmt = self.resource.base().with_only_columns(expr.label("value")).distinct()
        stmt = stmt.where(self.field.column.isnot(None), *self.conditions())
        if self.cursor is not None:
            values = cursors.decode(self.key, self._scope, self.cursor)
            try:
                after = self.field.type.from_cursor(values[0]) if len(values) == 1 else None
            except ValueError:
                after = None
            if after is None:
                raise BadRequest(cursors.INVALID)
            stmt = stmt.where(expr > after)
        return stmt.order_by(expr).limit(self.limit + 1)

    def page(self, values: Sequence[Any]) -> dict[str, Any]:
        data = list(values[: self.limit])
        next_cursor = None
        if len(values) > self.limit:
            next_cursor = cursors.encode(
                self.key, self._scope, [self.field.type.to_cursor(data[-1])]
            )
        return {"data": data, "next_cursor": next_cursor}
