"""The application factory. The lifespan owns the engines, the Redis client and the arq pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis

from app.config import Settings, get_settings
from app.db.catalog import runtime_role_refusal
from app.db.session import Database
from app.errors import install_error_handlers
from app.middleware import RequestContextMiddleware, RequireTLSMiddleware
from app.routers import (
    audit,
    auth,
    health,
    me,
    members,
    platform,
    provider_groups,
    providers,
    roles,
    workspace_settings,
    workspaces,
)
from app.routers.docs import install_docs
from app.security.deps import record_denial
from app.security.route_index import annotate_openapi

DESCRIPTION = """
Warden is a multi-tenant operations API. Every workspace-scoped route lives under
`/ws/{slug}/api/v1/...`; isolation is enforced by the application **and** by PostgreSQL
row-level security. Errors are RFC 9457 problem details (`application/problem+json`).

Use **Authorize** with your email and password (OAuth2 password flow) to try the API.
"""


class UnsafeDatabaseRole(RuntimeError):
    pass


def _annotate_openapi(app: FastAPI) -> None:
    """Every operation's OpenAPI entry names the permission its route requires."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = annotate_openapi(app, build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_settings(settings)
        if not settings.redis_url:
            raise RuntimeError("WARDEN_REDIS_URL is not set")
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            async with db.engine.connect() as conn:
                reason = await runtime_role_refusal(conn)
            if reason:
                raise UnsafeDatabaseRole(f"refusing to serve: {reason}")
            app.state.db = db
            app.state.redis = redis
            yield
        finally:
            await redis.aclose()
            await db.dispose()

    app = FastAPI(
        title="Warden",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app, on_denied=record_denial)
    for module in (
        health, auth, me, platform, workspaces, members, roles, providers, provider_groups,
        workspace_settings, audit,
    ):
        app.include_router(module.router)
    _annotate_openapi(app)
    install_docs(app)
    if settings.require_tls:
        app.add_middleware(RequireTLSMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app
