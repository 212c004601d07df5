"""Engines, and the central workspace filter on every ORM statement.

Invariant: every ORM SELECT/UPDATE/DELETE touching a `WorkspaceScoped` entity is limited to the
session's workspace (`session.info["workspace_id"]`, put there only by the tenant-context
function); with no workspace in the session the criterion is `false`, so the app layer fails
closed exactly like RLS does. `scope_options` builds those criteria (workspace, provider
visibility on every table that holds a provider id, and the principal's row criteria) for the
session hook and, with the context's values as named parameters, for list statements compiled
once and reused. New scoped rows take their `workspace_id` from the context; a row claiming
another workspace is refused before it reaches the database.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, any_, bindparam, event, exc, false, or_
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from app.config import Settings
from app.db.base import WorkspaceScoped, scoped_entities
from app.db.citus import CITUS_SQL
from app.db.pool import FairAsyncQueuePool
from app.db.transaction import CITUS, Transaction, transaction

# Pooled connections are replaced after this long, so a connection never lives for days.
POOL_RECYCLE_SECONDS = 1800


def make_engine(url: str, settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    connect_args: dict[str, object] = {
        "statement_cache_size": settings.db_statement_cache_size,
        # A server that does not answer (a network partition, not a refusal) fails fast.
        "timeout": settings.db_connect_timeout,
        "server_settings": {"application_name": "warden"},
    }
    engine_url = make_url(url)
    if settings.db_pgbouncer:
        # PgBouncer in transaction mode hands each transaction to any server connection:
        # a prepared statement must never be reused across transactions, nor its name collide.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = lambda: f"__warden_{uuid.uuid4().hex}__"
        engine_url = engine_url.update_query_dict({"prepared_statement_cache_size": "0"})
    engine = create_async_engine(
        engine_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=POOL_RECYCLE_SECONDS,
        poolclass=FairAsyncQueuePool,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    event.listen(engine.sync_engine, "connect", _note_deployment)
    return engine


def _note_deployment(dbapi_connection: Any, record: Any) -> None:
    """Once per new connection: is the server a Citus node? The request transaction then sends
    BEGIN on its own (`app.db.transaction`)."""
    record.info[CITUS] = bool(dbapi_connection.run_async(lambda c: c.fetchval(CITUS_SQL)))


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Checkout liveness without a round trip: asyncpg marks a connection closed as soon as the
    server ends it (restart, failover, `pg_terminate_backend`), and the pool then retries with a
    fresh one. `pool_pre_ping` would ask the server instead, and on asyncpg that is three round
    trips (BEGIN, `;`, ROLLBACK) added to every request."""
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("connection closed by the server")


@dataclass
class Database:
    """The runtime engines: primary (writes) and optional replica (reads), same role, same RLS.
    All work runs in `transaction()`; `relay` (set by whoever runs the job queue) sends the jobs
    a transaction wrote once it has committed."""

    engine: AsyncEngine
    read_engine: AsyncEngine | None = None
    relay: Any = None

    def transaction(self, *, read: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """A transaction on the primary, or (`read=True`) on the replica when one is
        configured."""
        engine = self.read_engine if read and self.read_engine is not None else self.engine
        return transaction(engine, self)

    @property
    def has_replica(self) -> bool:
        return self.read_engine is not None

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int | None = None) -> Database:
        if not settings.database_url:
            raise RuntimeError("WARDEN_DATABASE_URL is not set")
        engine = make_engine(settings.database_url, settings, pool_size=pool_size)
        if not settings.read_database_url:
            return cls(engine=engine)
        read_engine = make_engine(settings.read_database_url, settings, pool_size=pool_size)
        return cls(engine, read_engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not None:
            await self.read_engine.dispose()


@event.listens_for(Session, "do_orm_execute")
def _scope_to_workspace(state: ORMExecuteState) -> None:
    """Workspace scope, provider visibility and row grants, added to every ORM statement."""
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent load was already scoped
    state.statement = state.statement.options(*scope_options(state.session.info))


# The bound parameters a compiled (reused) statement takes its context from.
WORKSPACE_PARAM = "warden_workspace_id"
VISIBLE_PARAM = "warden_visible_provider_ids"


def scope_options(info: dict[str, Any], *, bound: bool = False) -> list[Any]:
    """The loader criteria of the central filter for a session's (or transaction's) context:
    the workspace (`false` without one), provider-group visibility unless unlimited (on every
    table holding a provider id, as its RLS policy does), and the principal's row criteria.
    With `bound=True` the context's values are left as the named parameters `WORKSPACE_PARAM` /
    `VISIBLE_PARAM`, for a statement compiled once and run with `scope_parameters(info)`."""
    workspace_id = info.get("workspace_id")
    if workspace_id is None:
        return [with_loader_criteria(WorkspaceScoped, lambda cls: false(), include_aliases=True)]
    if bound:
        options = [
            with_loader_criteria(
                WorkspaceScoped,
                # The name is spelled out: SQLAlchemy's lambda analysis would track a global.
                lambda cls: (
                    cls.workspace_id == bindparam("warden_workspace_id", None, type_=UUID())
                ),
                include_aliases=True,
            )
        ]
    else:
        options = [
            with_loader_criteria(
                WorkspaceScoped, lambda cls: cls.workspace_id == workspace_id, include_aliases=True
            )
        ]
    visibility = info.get("visibility")
    if visibility is not None and not visibility.unlimited:
        ids = list(visibility.provider_ids)
        for cls in provider_bound_entities():
            column = getattr(cls, cls.__provider__.column)  # type: ignore[arg-type]
            visible = (
                column == any_(bindparam(VISIBLE_PARAM, None, type_=ARRAY(UUID())))
                if bound
                else column.in_(ids)
            )
            if cls.__provider__.optional:
                visible = or_(column.is_(None), visible)
            options.append(with_loader_criteria(cls, visible, include_aliases=True))
    for cls, criterion in info.get("row_filters", {}).items():
        options.append(with_loader_criteria(cls, criterion, include_aliases=True))
    return options


def scope_key(info: dict[str, Any]) -> tuple[Any, ...]:
    """What of a context decides the SQL of `scope_options(info, bound=True)`."""
    visibility = info.get("visibility")
    return (
        info.get("workspace_id") is not None,
        visibility is None or visibility.unlimited,
        info.get("row_filter_key"),
    )


def scope_parameters(info: dict[str, Any]) -> dict[str, Any]:
    """The values of the named parameters `scope_options(info, bound=True)` leaves open."""
    visibility = info.get("visibility")
    ids = [] if visibility is None else list(visibility.provider_ids)
    return {WORKSPACE_PARAM: info.get("workspace_id"), VISIBLE_PARAM: ids}


def provider_bound_entities() -> list[type[WorkspaceScoped]]:
    """Scoped classes that hold a provider id (or are providers): provider-group visibility
    applies to them directly, as it does in their RLS policy."""
    return [c for c in scoped_entities() if c.__provider__.direct]


class CrossWorkspaceWrite(Exception):
    """A scoped row was about to be written with a workspace other than the context's."""


@event.listens_for(Session, "before_flush")
def _stamp_workspace(session: Session, flush_context: object, instances: object) -> None:
    workspace_id = session.info.get("workspace_id")
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, WorkspaceScoped):
            continue
        if obj.workspace_id is None and obj in session.new:
            obj.workspace_id = workspace_id
        if workspace_id is None or obj.workspace_id != workspace_id:
            raise CrossWorkspaceWrite(type(obj).__name__)
