"""Liveness, readiness, metrics and the JWKS."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request, Response

from app import metrics
from app.errors import RETRY_AFTER_SECONDS, problem
from app.security.tokens import jwks
from app.unavailable import unavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _check_db(request: Request) -> None:
    async with request.app.state.db.transaction() as tx:
        await tx.fetch("SELECT 1")


async def _check_redis(request: Request) -> None:
    await request.app.state.redis.ping()


@lru_cache(maxsize=1)
def code_head() -> str | None:
    """The migration head this code expects (None where the migrations are not shipped)."""
    from alembic.script import ScriptDirectory

    from app.db.migrate import alembic_config

    try:
        return ScriptDirectory.from_config(alembic_config()).get_current_head()
    except RuntimeError:
        return None


async def _check_migrations(request: Request) -> None:
    head = code_head()
    if head is None:
        return
    async with request.app.state.db.transaction() as tx:
        current = (await tx.fetch("SELECT warden_schema_version() AS v"))[0]["v"]
    if current != head:
        raise LookupError(f"database at {current}, code expects {head}")


@router.get(
    "/readyz",
    response_model=None,
    responses={503: {"description": "A dependency is unavailable (`checks` says which)"}},
)
async def readyz(request: Request) -> dict[str, Any] | Response:
    """Database and Redis answer (each within 2 s), and the database is at the migration head
    this code expects; when not, `checks` says which (`migrations`: where each stands) and
    `reasons` why."""
    names = ("database", "redis", "migrations")
    results = await asyncio.gather(
        *(
            asyncio.wait_for(check(request), timeout=2)
            for check in (_check_db, _check_redis, _check_migrations)
        ),
        return_exceptions=True,
    )
    checks: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if name != "migrations":
            metrics.READY.labels(name).set(0 if isinstance(result, BaseException) else 1)
        if not isinstance(result, BaseException):
            checks[name] = "ok"
        elif isinstance(result, LookupError):
            checks[name] = reasons[name] = str(result)
        else:
            lost = unavailable(result)
            checks[name] = "unavailable"
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
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus exposition; behind `Bearer WARDEN_METRICS_TOKEN` when that is set."""
    state = request.app.state
    token = state.settings.metrics_token
    secret = token.get_secret_value() if token is not None else None
    if not metrics.authorized(secret, request.headers.get("authorization")):
        return problem(
            401,
            "Unauthorized",
            "Metrics need the metrics token",
            slug="unauthorized",
            request=request,
        )
    await metrics.refresh(state.db, state.redis, state.settings.job_queue_name)
    body, media_type = metrics.render()
    return Response(body, media_type=media_type)


@router.get("/.well-known/jwks.json")
async def jwks_json(request: Request) -> dict[str, Any]:
    """Public keys for verifying access tokens (empty when HS256 is used)."""
    return jwks(request.app.state.settings)
