"""The bare baseline of the throughput benchmark: FastAPI + asyncpg and no security.

Same route, same SQL (the statement Warden's ORM emits for the benchmark's viewer: workspace
filter, soft-delete filter, the row grant's `region IN (…)`, keyset order and limit), the same
`SET LOCAL` string inside the same kind of transaction, the same pool size and the same JSON
shape (the viewer's `uid` dropped). No JWT, no membership lookup, no permission check, no ORM,
no pydantic, no middleware. With no authentication to derive it from, the workspace context
comes from a static map the harness passes in `BENCH_BARE_CONFIG`.

Run: `python -m benchmarks.bare_app --port 8001` (one uvicorn worker, like `warden serve`).
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, Response

from app.db.tenant import Visibility, context_statement

COLUMNS = (
    "provider.workspace_id, provider.id, provider.provider_type, provider.uid, provider.alias, "
    "provider.region, provider.deleted_at, provider.created_at, provider.updated_at"
)
OUT_FIELDS = ("id", "provider_type", "alias", "region", "created_at", "updated_at")


def list_sql(regions: int) -> str:
    marks = ", ".join(f"${i + 2}::VARCHAR" for i in range(regions))
    return (
        f"SELECT {COLUMNS} \nFROM provider \nWHERE provider.deleted_at IS NULL AND "
        f"provider.workspace_id = $1::UUID AND provider.region IN ({marks}) "
        f"ORDER BY provider.id \n LIMIT ${regions + 2}::INTEGER"
    )


class Context:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.workspace_id = uuid.UUID(spec["workspace_id"])
        self.regions = list(spec["regions"])
        self.set_local = context_statement(
            self.workspace_id, uuid.UUID(spec["user_id"]), Visibility(unlimited=True)
        )
        self.sql = list_sql(len(self.regions))


def create_app() -> FastAPI:
    contexts = {k: Context(v) for k, v in json.loads(os.environ["BENCH_BARE_CONFIG"]).items()}
    pool_size = int(os.environ.get("BENCH_BARE_POOL_SIZE", "10"))
    overflow = int(os.environ.get("BENCH_BARE_MAX_OVERFLOW", "10"))
    cache = int(os.environ.get("BENCH_BARE_STATEMENT_CACHE_SIZE", "100"))
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            os.environ["BENCH_BARE_DSN"],
            min_size=1,
            max_size=pool_size + overflow,
            statement_cache_size=cache,
        )
        try:
            yield
        finally:
            await state["pool"].close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ws/{slug}/api/v1/providers")
    async def list_providers(slug: str, limit: int = 50) -> Response:
        ctx = contexts.get(slug)
        if ctx is None:
            return Response(status_code=404)
        async with state["pool"].acquire() as conn, conn.transaction():
            await conn.execute(ctx.set_local)
            rows = await conn.fetch(ctx.sql, ctx.workspace_id, *ctx.regions, limit)
        data = [{k: row[k] for k in OUT_FIELDS} for row in rows]
        cursor = str(rows[-1]["id"]) if len(rows) == limit else None
        body = orjson.dumps({"data": data, "next_cursor": cursor}, default=str)
        return Response(body, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
