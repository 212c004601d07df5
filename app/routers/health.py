"""Liveness, readiness, metrics and the JWKS."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import text

from app.errors import RETRY_AFTER_SECONDS, problem
from app.security.tokens import jwks
from app.unavailable import unavailable

router = APIRouter(tags=["operations"])

READY = Gauge(
    "warden_dependency_ready", "1 when the dependency answered the last /readyz", ["dependency"]
)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _check_db(request: Request) -> None:
    async with request.app.state.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(request: Request) -> None:
    await request.app.state.redis.ping()


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> dict[str, Any] | Response:
    """Database and Redis answer (each within 2 s); when not, `checks` says which and
    `reasons` why."""
    names = ("database", "redis")
    results = await asyncio.gather(
        *(asyncio.wait_for(check(request), timeout=2) for check in (_check_db, _check_redis)),
        return_exceptions=True,
    )
    checks: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        ok = not isinstance(result, BaseException)
        READY.labels(name).set(1 if ok else 0)
        checks[name] = "ok" if ok else "unavailable"
        if isinstance(result, BaseException):
            lost = unavailable(result)
            reasons[name] = lost.reason if lost is not None else type(result).__name__
    if not reasons:
        return {"status": "ready", "checks": checks}
    down = ", ".join(f"{name} ({reason})" for name, reason in reasons.items())
    return problem(
        503,
        "Not ready",
        f"Unavailable: {down}",
        slug="not-ready",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        checks=checks,
        reasons=reasons,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json")
async def jwks_json(request: Request) -> dict[str, Any]:
    """Public keys for verifying access tokens (empty when HS256 is used)."""
    return jwks(request.app.state.settings)
