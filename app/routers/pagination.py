"""Cursor pagination over UUIDv7 ids: ids are time-ordered and unique, so `id > cursor` is a
stable keyset page with no tie-breaker needed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from app.errors import BadRequest

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page")
]


class PageParams:
    def __init__(self, request: Request, limit: Limit = 50, cursor: Cursor = None) -> None:
        cap = request.app.state.settings.max_page_size
        if limit > cap:
            raise BadRequest(f"limit must be at most {cap}")
        self.limit = limit
        self.after: uuid.UUID | None = None
        if cursor is not None:
            try:
                self.after = uuid.UUID(cursor)
            except ValueError:
                raise BadRequest("cursor is not a cursor returned by this list") from None

    def page(self, rows: list[Any], key: str = "id") -> dict[str, Any]:
        last = rows[-1] if len(rows) == self.limit else None
        cursor = None
        if last is not None:
            cursor = str(last[key] if isinstance(last, dict) else getattr(last, key))
        return {"data": rows, "next_cursor": cursor}


async def page_params(request: Request, limit: Limit = 50, cursor: Cursor = None) -> PageParams:
    """`PageParams` as a coroutine dependency: FastAPI runs a class or plain-function dependency
    in its thread pool, which costs a thread hop on every list request."""
    return PageParams(request, limit, cursor)


# Use this in list routes (not `Annotated[PageParams, Depends()]`).
Paging = Annotated[PageParams, Depends(page_params)]
