"""Liveness, readiness, metrics and the JWKS."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.errors import problem
from app.security.tokens import jwks

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _check_db(request: Request) -> None:
    async with request.app.state.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(request: Request) -> None:
    await request.app.state.redis.ping()


@router.get(
    "/readyz",
    response_model=None,
    responses={503: {"description": "A dependency is unavailable (`checks` says which)"}},
)
async def readyz(request: Request) -> dict[str, Any] | Response:
    """Database and Redis answer (each within 2 s)."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_db), ("redis", _check_redis)):
        try:
            await asyncio.wait_for(check(request), timeout=2)
            checks[name] = "ok"
        except Exception:  # noqa: BLE001 - any failure means not ready
            checks[name] = "unavailable"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    return problem(503, "Not ready", "A dependency is unavailable", slug="not-ready", checks=checks)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json")
async def jwks_json(request: Request) -> dict[str, Any]:
    """Public keys for verifying access tokens (empty when HS256 is used)."""
    return jwks(request.app.state.settings)
