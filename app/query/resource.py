"""A list resource's query language: declaration, request parsing, SQL, pages and cursors.

Invariant: fields hidden from the caller by a field rule (`app.security.fields.excluded`) do not
exist here: filtering, sorting, searching or listing distinct values of one answers exactly like
a field that was never declared. Visibility is checked when the query is compiled, inside the
handler, so it always sees the rules the scoped session installed, whatever the order of the
route's dependencies. Workspace scope, provider visibility and row grants are not handled here:
every statement is an ORM select over the resource's base select, and `app.db.session` adds
them, whether it runs through the session or compiled once (`app.query.plan`). Every value a
query contributes goes through one `bind` callable, in a fixed order per `shape`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

import asyncpg
from fastapi import Body, Path, Query, Request
from sqlalchemy import Boolean as SQLBoolean
from sqlalchemy import Integer as SQLInteger
from sqlalchemy import Select, and_, or_
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
from app.query.types import describe_ops
from app.security.fields import unqueryable

RESERVED = frozenset({"limit", "cursor", "sort"})
MAX_SORT_KEYS = 4
MAX_SEARCH_VALUES = 1000

Limit = Annotated[int | None, Query(description="Page size (default 50)")]
Cursor = Annotated[
    str | None, Query(max_length=cursors.MAX_CURSOR, description="The previous page's next_cursor")
]
Sort = Annotated[str | None, Query(max_length=300, description="e.g. `-created_at,name`")]


@dataclass(frozen=True, eq=False)
class Resource:
    """What a list endpoint lets callers filter and sort on.

    `name` is the resource's key in the field rules (and the cursor scope); `base` returns the
    ORM select of the rows the list shows (with its joins and fixed conditions); `key` names the
    unique field used as the last sort key (the stable tie-breaker).
    """

    name: str
    base: Callable[[], Select[Any]]
    fields: Mapping[str, Field]
    key: str = "id"
    default_sort: tuple[str, ...] = ("id",)
    max_in: int = 100

    def __post_init__(self) -> None:
        assert self.key in self.fields and self.fields[self.key].sortable, self.key
        assert not self.fields[self.key].nullable, self.key
        for name in self.default_sort:
            assert name.lstrip("-") in self.fields, name

    # What the caller may see

    def visible(self, *, sortable: bool = False) -> dict[str, Field]:
        hidden = unqueryable(self.name)
        return {
            n: f for n, f in self.fields.items() if n not in hidden and (f.sortable or not sortable)
        }

    def field(self, name: str, *, kind: str = "filterable") -> Field:
        fields = self.visible(sortable=kind == "sortable")
        if name not in fields:
            raise BadRequest(f"unknown field '{name[:60]}'; {kind}: {', '.join(fields)}")
        return fields[name]

    # FastAPI dependencies (query parameters are documented per route by `doc`). Coroutines:
    # a plain function dependency would run in FastAPI's thread pool, a thread hop per request.

    async def list_query(
        self,
        request: Request,
        limit: Limit = None,
        cursor: Cursor = None,
        sort: Sort = None,
    ) -> ListQuery:
        return ListQuery(self, _Request(request, limit, cursor), sort)

    async def search_query(
        self,
        request: Request,
        field: Annotated[str, Path(max_length=64, description="Field to search on")],
        values: Annotated[list[Any], Body(description="Values to match", examples=[["a", "b"]])],
        limit: Limit = None,
        cursor: Cursor = None,
        sort: Sort = None,
    ) -> ListQuery:
        return ListQuery(self, _Request(request, limit, cursor), sort, (field, values))

    async def distinct_query(
        self,
        request: Request,
        field: Annotated[str, Path(max_length=64, description="Field whose values to list")],
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> DistinctQuery:
        return DistinctQuery(self, _Request(request, limit, cursor), field)

    def doc(self, summary: str = "") -> str:
        """The OpenAPI description of a list route: the language and this resource's fields."""
        rows = "\n".join(
            f"| `{n}` | {f.type.describe()} | {describe_ops(f.type.ops)} | {'yes' * f.sortable} |"
            for n, f in self.fields.items()
        )
        return (
            f"{summary}\n\n{LANGUAGE_DOC}\n\nDefault sort: `{','.join(self.default_sort)}`; "
            f"ties are broken by `{self.key}`.\n\n"
            f"| Field | Type | Operators | Sortable |\n| --- | --- | --- | --- |\n{rows}"
        )


LANGUAGE_DOC = """**Query language** (see the README). `field=value` or `field__op=value`; terms \
combine with AND. Operators: `ne, in, startswith, contains, notcontains, exists, gt, lt, gte, \
lte, between`. `in` and `between` take JSON lists (`status__in=[200,201]`, \
`created_at__between=["2024-01-01","2024-01-31"]`), `exists` takes `true`/`false`. Values are \
parsed to the field's type; a bare date means that whole day (UTC). `contains`/`startswith` are \
case-sensitive and match `%` and `_` literally; `ne` and `notcontains` also match missing \
values. `sort=-created_at,name` sorts (`-` descending). `limit` (default 50, at most \
`WARDEN_MAX_PAGE_SIZE`) and `cursor` (the previous page's `next_cursor`) page through results. \
Path parameters win over query parameters. Unknown fields, operators or values answer 400; \
fields hidden from your role answer like unknown ones. `POST …/search/{field}` takes a JSON list \
of values; `GET …/distinct/{field}` lists a field's distinct values."""


class _Request:
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
    def __init__(self, resource: Resource, req: _Request) -> None:
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
        req: _Request,
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
        shape differ only in bound parameters (the key of `app.query.plan`)."""
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
            where.append(_beyond(_components(self.sort, self.after), bind))
        return where, bind(self.limit + 1, SQLInteger())

    def order(self) -> list[Any]:
        return [
            expr.desc() if desc else expr.asc()
            for expr, desc, _, _ in _components(self.sort, self.after)
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
                v = _value(last, k.name)
                values.append(None if v is None else k.field.type.to_cursor(v))
            next_cursor = cursors.encode(self.key, self._scope, values)
        return {"data": data, "next_cursor": next_cursor}


def _value(row: Any, name: str) -> Any:
    if isinstance(row, Mapping | asyncpg.Record):
        return row[name]
    mapping = getattr(row, "_mapping", None)
    if mapping is not None:
        return mapping[name]
    return getattr(row, name)


Component = tuple[Any, bool, Any, Any]  # expression, descending, cursor value, SQL type


def _components(sort: Sequence[SortKey], after: list[Any] | None) -> list[Component]:
    """(expression, descending, cursor value, type) per ORDER BY term. A nullable field sorts
    as (is null, value): nulls last ascending, first descending, and the keyset stays exact."""
    out: list[Component] = []
    for i, k in enumerate(sort):
        v = after[i] if after is not None else None
        if k.field.nullable:
            out.append((k.field.column.is_(None), k.desc, v is None, SQLBoolean()))
        out.append((k.field.sort_expr, k.desc, v, k.field.column.type))
    return out


def _beyond(components: list[Component], bind: Bind) -> ColumnElement[bool]:
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


class DistinctQuery(_BaseQuery):
    """The distinct non-null values of one field among the rows the caller may see (and that
    match the query's filters), ascending, paged."""

    def __init__(self, resource: Resource, req: _Request, field_name: str) -> None:
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
