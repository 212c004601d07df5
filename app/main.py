"""The application factory. The lifespan owns the engines, the Redis client and the arq pool."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.asyncio import ConnectionPool, Redis

from app import metrics, openapi
from app.config import Settings, get_settings
from app.db.catalog import runtime_role_refusal
from app.db.session import Database
from app.errors import install_error_handlers
from app.middleware import BodyLimitMiddleware, RequestContextMiddleware, RequireTLSMiddleware
from app.routers import (
    api_keys,
    audit,
    auth,
    changes,
    findings,
    health,
    idp_groups,
    incidents,
    invitations,
    me,
    members,
    mfa,
    notifications,
    platform,
    provider_groups,
    providers,
    roles,
    scans,
    service_keys,
    tasks,
    workspace_settings,
    workspaces,
)
from app.routers.docs import install_docs
from app.routing import RouteIndex
from app.security import idempotency
from app.security.deps import record_denial
from app.security.providers import BearerSignIns, configured
from app.services import outbox
from app.unavailable import retry_while_unavailable

log = logging.getLogger("warden.main")

DESCRIPTION = """
Warden is a multi-tenant operations API. Every workspace-scoped route lives under
`/ws/{slug}/api/v1/...`; isolation is enforced by the application **and** by PostgreSQL
row-level security. Errors are RFC 9457 problem details (`application/problem+json`).

Use **Authorize** with your email and password (OAuth2 password flow) to try the API.
"""


class UnsafeDatabaseRole(RuntimeError):
    pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_settings(settings)
        if not settings.redis_url:
            raise RuntimeError("WARDEN_REDIS_URL is not set")
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        # The job queue. Created without a ping: the API serves (and the outbox keeps jobs)
        # while Redis is down.
        arq = ArqRedis(
            ConnectionPool.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1),
            default_queue_name=settings.job_queue_name,
        )
        # Jobs a previous process committed but never handed to Redis are the worker's to send
        # (its startup and its sweeper, as the maintenance role): the runtime role sees no
        # workspace's outbox without that workspace's context.
        try:

            async def role_refusal() -> str | None:
                async with db.engine.connect() as conn:
                    return await runtime_role_refusal(conn)

            # Started before the database is up (or during its restart): wait for it.
            reason = await retry_while_unavailable(role_refusal, what="startup", log=log)
            if reason:
                raise UnsafeDatabaseRole(f"refusing to serve: {reason}")
            db.relay = outbox.Relay(db, arq, settings.job_queue_name)
            metrics.watch_pool(db.engine, "primary")
            if db.read_engine is not None:
                metrics.watch_pool(db.read_engine, "replica")
            app.state.db = db
            app.state.redis = redis
            app.state.arq = arq
            yield
        finally:
            await arq.aclose(close_connection_pool=True)
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
        openapi_tags=openapi.TAGS,
    )
    app.state.settings = settings
    app.state.auth_providers = configured(settings)
    if settings.oidc_issuer:
        app.state.bearer_sign_ins = BearerSignIns(app.state.auth_providers, auth.bearer_sign_in)
    install_error_handlers(app, on_denied=record_denial)
    idempotency.install(app)
    for module in (
        health,
        auth,
        me,
        api_keys,
        mfa,
        platform,
        workspaces,
        members,
        roles,
        service_keys,
        idp_groups,
        providers,
        provider_groups,
        scans,
        findings,
        tasks,
        workspace_settings,
        audit,
        changes,
        incidents,
        invitations,
        notifications,
    ):
        # The routes themselves, not an included router: FastAPI matches an included router's
        # routes twice per request (select, then handle), and the index below needs them flat.
        app.router.routes.extend(module.router.routes)
    openapi.install(app)
    install_docs(app)
    app.router.routes.insert(0, RouteIndex(app.router.routes))
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    if settings.require_tls:
        app.add_middleware(RequireTLSMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app
