"""The query language of every list endpoint (SPEC section 6), written once.

`field=value`, `field__op=value` (ne, in, startswith, contains, notcontains, exists, gt, lt,
gte, lte, between), `sort=-a,b`, `limit`, `cursor`; `POST …/search/{field}` with a JSON list;
`GET …/distinct/{field}`. Path parameters that name a field are filters and beat query
parameters. Errors are 400 problem details that say what was wrong.

Applying it to a new list (e.g. scans, findings, tasks):

1. Declare the resource next to its service, over the ORM select of the rows the list shows::

       SCANS = Resource(
           name="scan",                                  # the field-rules key
           base=lambda: select(Scan),                    # fixed joins/conditions go here
           fields={
               "id": Field(Scan.id, Uuid()),
               "state": Field(Scan.state, Enum(("queued", "running", "done"))),
               "provider_id": Field(Scan.provider_id, Uuid()),
               "started_at": Field(Scan.started_at, Timestamp(), nullable=True),
           },
           default_sort=("-id",),
       )

2. The service runs `query.statement()` (the base select filtered, sorted, after the cursor,
   limit + 1 rows) through the scoped session, so workspace scope, provider visibility and row
   grants apply as for any ORM query::

       async def list_scans(session, query: ListQuery) -> list[Scan]:
           return list((await session.execute(query.statement())).scalars())

   A list whose rows are its response model's columns (`base=lambda:
   select(*row_columns(Scan, ScanOut))`) can instead run compiled, once per query shape, on the
   request's connection (the same criteria, bound per request), the way the
   providers and findings lists do::

       async def list_scans(tx: Transaction, query: ListQuery) -> list[Record]:
           return await fetch_rows(tx, query)

3. The router declares the three routes; `query.page(rows)` builds `{"data", "next_cursor"}`::

       @router.get("", response_model=Page[ScanOut], description=SCANS.doc("List scans."))
       async def list_scans(ctx: Reader, query: Annotated[ListQuery, Depends(SCANS.list_query)]):
           return query.page(await scans.list_scans(ctx.session, query))

       @router.post("/search/{field}", response_model=Page[ScanOut])
       async def search_scans(
           ctx: Reader, query: Annotated[ListQuery, Depends(SCANS.search_query)]
       ):
           return query.page(await scans.list_scans(ctx.session, query))

       @router.get("/distinct/{field}", response_model=DistinctPage)
       async def distinct_scans(
           ctx: Reader, query: Annotated[DistinctQuery, Depends(SCANS.distinct_query)]
       ):
           return await distinct(ctx.session, query)

   Give the router `route_class=AuditedRoute` like every API router: the
   audit completeness test fails for a route without it.

Rows passed to `page()` must expose every sortable field under its name (entities, mappings or
result rows all work): the cursor is built from the last row's sort-key values.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.query.filters import Field
from app.query.queries import DistinctQuery, ListQuery
from app.query.resource import Resource
from app.query.types import Boolean, Enum, IdTime, Integer, Text, Timestamp, Uuid


class _Scoped(Protocol):
    @property
    def session(self) -> AsyncSession: ...


async def distinct(ctx: _Scoped, query: DistinctQuery) -> dict[str, Any]:
    """Run a distinct-values query through the context's scoped session and page the result."""
    return query.page(list((await ctx.session.execute(query.statement())).scalars()))


__all__ = [
    "Boolean",
    "DistinctQuery",
    "Enum",
    "Field",
    "IdTime",
    "Integer",
    "ListQuery",
    "Resource",
    "Text",
    "Timestamp",
    "Uuid",
    "distinct",
]
