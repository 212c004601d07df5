"""A list's declaration: the fields callers may filter and sort on, and the FastAPI dependencies
that turn a request into a query over them.

Invariant: fields hidden from the caller by a field rule (excluded, or masked because they embed
a hidden provider field) do not exist here: filtering, sorting, searching or listing distinct
values of one answers exactly like a field that was never declared. Visibility is checked when
the query is compiled, inside the handler, so it always sees the rules the workspace context
installed, whatever the order of the route's dependencies. Workspace scope, provider visibility
and row grants are not handled here: every statement is an ORM select over the resource's base
select, and the central filter adds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Body, Path, Query, Request
from sqlalchemy import Select

from app.errors import BadRequest
from app.query import cursor as cursors
from app.query.filters import Field
from app.query.queries import DistinctQuery, ListQuery, RequestValues
from app.query.types import describe_ops
from app.security.fields import unqueryable

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
        return ListQuery(self, RequestValues(request, limit, cursor), sort)

    async def search_query(
        self,
        request: Request,
        field: Annotated[str, Path(max_length=64, description="Field to search on")],
        values: Annotated[list[Any], Body(description="Values to match", examples=[["a", "b"]])],
        limit: Limit = None,
        cursor: Cursor = None,
        sort: Sort = None,
    ) -> ListQuery:
        return ListQuery(self, RequestValues(request, limit, cursor), sort, (field, values))

    async def distinct_query(
        self,
        request: Request,
        field: Annotated[str, Path(max_length=64, description="Field whose values to list")],
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> DistinctQuery:
        return DistinctQuery(self, RequestValues(request, limit, cursor), field)

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
