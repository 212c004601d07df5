"""Errors as RFC 9457 problem details: one exception family, one set of handlers.

Invariant: no response carries a stack trace, SQL or a secret. Unknown exceptions become a bare
500 problem (logged with the request id); database integrity errors become 409 without the
driver's message; validation errors list field paths and messages only. An unavailable database
or Redis (by the one classification of outages) is a 503 with `Retry-After`, logged as one line
naming the dependency and the reason, never a 500 or a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, EmulatedDBAPIException, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app import metrics
from app.db.session import CrossWorkspaceWrite
from app.unavailable import (
    CANDIDATE_TYPES,
    REDIS,
    RETRYABLE_SQLSTATES,
    Unavailable,
    causes,
    unavailable,
)

log = logging.getLogger("warden.errors")

# Seconds a client should wait before retrying after a 503.
RETRY_AFTER_SECONDS = 1
DATABASE_ERRORS = (
    DBAPIError,
    EmulatedDBAPIException,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://warden.dev/problems/"


class AppError(Exception):
    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str = "Missing or invalid credentials", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(AppError):
    status, title, slug = 403, "Forbidden", "forbidden"


class MfaRequired(Forbidden):
    """The workspace requires a second factor the caller has not turned on."""

    title, slug = "MFA required", "mfa-required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("code", "mfa_required")
        super().__init__(
            detail
            or "This workspace requires multi-factor authentication: turn on TOTP at "
            "POST /api/v1/me/mfa/totp first",
            **kw,
        )


class NotFound(AppError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(AppError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(AppError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class TooManyRequests(AppError):
    status, title, slug = 429, "Too many requests", "too-many-requests"


class ServiceUnavailable(AppError):
    status, title, slug = 503, "Service unavailable", "service-unavailable"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    request: Request | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


_HTTP_TITLES = {
    400: ("Bad request", "bad-request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not found", "not-found"),
    405: ("Method not allowed", "method-not-allowed"),
    413: ("Payload too large", "payload-too-large"),
    415: ("Unsupported media type", "unsupported-media-type"),
}


# A body with thousands of bad (or huge) keys must not earn a response many times its size.
MAX_ERRORS = 50
MAX_LOC_PART = 100


def _clean_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors()[:MAX_ERRORS]:
        loc = [str(p)[:MAX_LOC_PART] for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


DENIALS = frozenset({401, 403, 404})
DenialRecorder = Callable[[Request, int, str], Awaitable[None]]


def install_error_handlers(app: FastAPI, on_denied: DenialRecorder | None = None) -> None:
    """`on_denied` is told of every 401/403/404 answer (it decides which routes count)."""

    async def denied(request: Request, status: int, detail: str) -> None:
        if on_denied is not None and status in DENIALS:
            await on_denied(request, status, detail)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        await denied(request, exc.status, exc.detail)
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.slug,
            headers=exc.headers,
            request=request,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return problem(
            422,
            "Validation failed",
            "The request did not match the expected shape",
            slug="validation",
            request=request,
            errors=_clean_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title, slug = _HTTP_TITLES.get(exc.status_code, ("Error", str(exc.status_code)))
        detail = exc.detail if isinstance(exc.detail, str) else title
        await denied(request, exc.status_code, detail)
        return problem(
            exc.status_code,
            title,
            detail,
            slug=slug,
            headers=getattr(exc, "headers", None),
            request=request,
        )

    @app.exception_handler(CrossWorkspaceWrite)
    async def _cross(request: Request, exc: CrossWorkspaceWrite) -> Response:
        log.error("cross-workspace write refused", extra={"entity": str(exc)})
        await denied(request, 404, "cross-workspace write refused")
        return problem(404, "Not found", "Not found", slug="not-found", request=request)

    async def _dependency(request: Request, exc: Exception) -> Response:
        """Errors of the database, Redis or the network, raised through SQLAlchemy, by a
        statement run on the driver itself (the request transaction) or by the Redis client: the
        same answers whichever way they arrive."""
        lost = unavailable(exc)
        if lost is not None:
            return unavailable_problem(request, lost)
        sqlstate = _sqlstate(exc)
        if isinstance(exc, IntegrityError) or sqlstate.startswith("23"):
            log.info("integrity error", extra={"sqlstate": sqlstate or None})
            return problem(
                409,
                "Conflict",
                "The change conflicts with existing data",
                slug="conflict",
                request=request,
            )
        if sqlstate == "42501":
            # Row-level security refused a write (WITH CHECK): the row would fall outside what
            # the caller may see. The app layer normally refuses first; this is the safety net.
            log.warning("write refused by row-level security")
            return problem(
                403,
                "Forbidden",
                "The change is outside what your role may access",
                slug="forbidden",
                request=request,
            )
        if sqlstate in RETRYABLE_SQLSTATES:
            log.warning("database conflict, retry", extra={"sqlstate": sqlstate})
            return _retry_later(request, "The request collided with another; retry it")
        if not isinstance(exc, DATABASE_ERRORS):
            return await _unhandled(request, exc)
        log.exception("database error")
        return _retry_later(request, "The database could not complete the request")

    for error_type in CANDIDATE_TYPES:
        app.add_exception_handler(error_type, _dependency)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(
            500,
            "Internal server error",
            "An unexpected error occurred",
            slug="internal",
            request=request,
        )


def _sqlstate(exc: BaseException) -> str:
    for e in causes(exc):
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def _retry_later(request: Request, detail: str) -> Response:
    return problem(
        503,
        "Service unavailable",
        detail,
        slug="service-unavailable",
        request=request,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def unavailable_problem(request: Request, lost: Unavailable) -> Response:
    """The 503 for an unavailable dependency: one log line, one metric, `Retry-After`."""
    metrics.UNAVAILABLE.labels(lost.dependency, lost.reason).inc()
    log.warning(
        "%s unavailable: %s",
        lost.dependency,
        lost.reason,
        extra={"dependency": lost.dependency, "reason": lost.reason},
    )
    name = "Redis" if lost.dependency == REDIS else "The database"
    return _retry_later(request, f"{name} is unavailable ({lost.reason}); retry later")
