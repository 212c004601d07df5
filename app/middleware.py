"""Pure-ASGI request middleware: request id, access log line, metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logging import request_id_var, user_var, workspace_var
from app.security.audit import request_path

log = logging.getLogger("warden.access")
# \Z, not $: `$` also matches before a trailing newline, which must not reach a header.
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")

REQUESTS = Counter("warden_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("warden_http_request_seconds", "HTTP request latency", ["method", "route"])


class RequestContextMiddleware:
    """Gives every request an id (the client's `X-Request-ID` when well-formed), echoes it in the
    response, and logs one line per request with status, duration, workspace and user."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        tokens = (request_id_var.set(request_id), workspace_var.set(None), user_var.set(None))
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            principal = scope.get("state", {}).get("principal")
            if principal is not None:
                user_var.set(str(principal.user_id))
                workspace = getattr(principal, "workspace_id", None)
                workspace_var.set(str(workspace) if workspace else None)
            client = scope.get("client")
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": request_path(scope),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None,
                    "user_agent": headers.get(b"user-agent", b"").decode("latin-1")[:200] or None,
                },
            )
            for var, token in zip((request_id_var, workspace_var, user_var), tokens, strict=True):
                var.reset(token)


class RequireTLSMiddleware:
    """With `WARDEN_REQUIRE_TLS`, plain-HTTP requests are refused (probes excepted) and HTTPS
    responses carry HSTS. Behind a proxy, set `WARDEN_TRUSTED_PROXIES` so the scheme is known."""

    PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.PROBES:
            await self.app(scope, receive, send)
            return
        if scope.get("scheme") != "https":
            from app.errors import problem

            response = problem(
                403, "HTTPS required", "This API is served over HTTPS only", slug="https-required"
            )
            await response(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
                ]
            await send(message)

        await self.app(scope, receive, send_wrapper)


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuse bodies over the limit with a 413 problem before they are parsed: JSON bodies get
    `max_body_bytes`, multipart uploads `max_upload_bytes`. Counts what is actually received, so a
    missing or false Content-Length does not get around it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.max_upload_bytes if multipart else self.max_body_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            from app.errors import problem

            response = problem(
                413, "Payload too large", BodyTooLarge(limit).detail, slug="payload-too-large"
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)
