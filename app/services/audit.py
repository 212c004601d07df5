"""Reading the audit trail: the workspace log, one resource's history, the caller's own
security events and denials. Records are written by the request hook, the chain is kept by the
sealer; what a reader may see (records about resources they see, fields their role sees) is
applied centrally, as everywhere else."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.db.models import AuditDenial, AuditRecord, UserEvent
from app.query import Enum, Field, Integer, ListQuery, Resource, Text, Timestamp, Uuid
from app.query.types import Boolean
from app.security.principal import UserContext, WorkspaceContext

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _call_fields(model: Any) -> dict[str, Field]:
    return {
        "id": Field(model.id, Uuid()),
        "created_at": Field(model.created_at, Timestamp()),
        "action": Field(model.action, Text()),
        "method": Field(model.method, Enum(METHODS)),
        "path": Field(model.path, Text()),
        "resource_type": Field(model.resource_type, Text(), nullable=True),
        "resource_id": Field(model.resource_id, Uuid(), nullable=True),
        "status": Field(model.status, Integer()),
        "api_key_id": Field(model.api_key_id, Uuid(), nullable=True),
        "source_ip": Field(model.source_ip, Text(), nullable=True),
        "user_agent": Field(model.user_agent, Text(), nullable=True),
        "request_id": Field(model.request_id, Text(), nullable=True),
    }


AUDIT = Resource(
    name="audit",
    base=lambda: select(AuditRecord),
    fields={
        **_call_fields(AuditRecord),
        "user_id": Field(AuditRecord.user_id, Uuid()),
        "seq": Field(AuditRecord.seq, Integer(), nullable=True),
        "sealed": Field(AuditRecord.hash.isnot(None), Boolean(), sortable=False),
    },
    default_sort=("-id",),
)

USER_EVENTS = Resource(
    name="user_event",
    base=lambda: select(UserEvent),
    fields=_call_fields(UserEvent),
    default_sort=("-id",),
)

DENIALS = Resource(
    name="denial",
    base=lambda: select(AuditDenial),
    fields={
        "id": Field(AuditDenial.id, Uuid()),
        "created_at": Field(AuditDenial.created_at, Timestamp()),
        "status": Field(AuditDenial.status, Integer()),
        "method": Field(AuditDenial.method, Enum(METHODS)),
        "path": Field(AuditDenial.path, Text()),
        "workspace_slug": Field(AuditDenial.workspace_slug, Text(), nullable=True),
        "source_ip": Field(AuditDenial.source_ip, Text(), nullable=True),
        "request_id": Field(AuditDenial.request_id, Text(), nullable=True),
    },
    default_sort=("-id",),
)


async def list_records(ctx: WorkspaceContext, query: ListQuery) -> list[AuditRecord]:
    return list((await ctx.session.execute(query.statement())).scalars())


def _history_base() -> Any:
    """Write calls on one resource (the route adds resource_type and resource_id as path
    filters), each with the last state an earlier write left (`before`)."""
    prior = aliased(AuditRecord)
    before = (
        select(prior.state)
        .where(
            prior.workspace_id == AuditRecord.workspace_id,
            prior.resource_id == AuditRecord.resource_id,
            prior.resource_type == AuditRecord.resource_type,
            prior.method.in_(WRITE_METHODS),
            prior.state.isnot(None),
            prior.id < AuditRecord.id,
        )
        .order_by(prior.id.desc())
        .limit(1)
        .correlate(AuditRecord)
        .scalar_subquery()
    )
    return select(AuditRecord, before.label("before")).where(AuditRecord.method.in_(WRITE_METHODS))


HISTORY = Resource(
    name="history",
    base=_history_base,
    fields={
        "id": Field(AuditRecord.id, Uuid()),
        "created_at": Field(AuditRecord.created_at, Timestamp()),
        "action": Field(AuditRecord.action, Text()),
        "user_id": Field(AuditRecord.user_id, Uuid()),
        "resource_type": Field(AuditRecord.resource_type, Text(), sortable=False),
        "resource_id": Field(AuditRecord.resource_id, Uuid(), sortable=False),
    },
)


def changes(before: Any, after: Any, deleted: bool) -> dict[str, dict[str, Any]]:
    """Fields whose value differs between two states, as {field: {before, after}}."""
    old = before if isinstance(before, dict) else {}
    if deleted:
        return {k: {"before": v, "after": None} for k, v in old.items()}
    if not isinstance(after, dict):
        return {}
    return {
        k: {"before": old.get(k), "after": v}
        for k, v in after.items()
        if k not in old or old[k] != v
    }


async def history(ctx: WorkspaceContext, query: ListQuery) -> list[dict[str, Any]]:
    rows = (await ctx.session.execute(query.statement())).all()
    out = []
    for record, before in rows:
        out.append(
            {
                "id": record.id,
                "created_at": record.created_at,
                "action": record.action,
                "user_id": record.user_id,
                "api_key_id": record.api_key_id,
                "request_id": record.request_id,
                "resource_type": record.resource_type,
                "changes": changes(before, record.state, record.method == "DELETE"),
            }
        )
    return out


async def list_user_rows(ctx: UserContext, query: ListQuery, model: Any) -> list[Any]:
    """The caller's own user events or denials (RLS on `user_id` says the same)."""
    user_id: uuid.UUID = ctx.principal.user_id
    stmt = query.statement(query.resource.base().where(model.user_id == user_id))
    return list((await ctx.session.execute(stmt)).scalars())
