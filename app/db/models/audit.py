"""The audit trail: workspace records (hash-chained), retention cuts, per-actor denials and
per-user security events.

The runtime role only SELECTs these tables (and `audit_head`, each chain's head and last
verified position); records, events and denials are written, sealed, verified and removed by
the narrow definer functions of migrations 0004 and 0015.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import (
    ABOUT_A_RESOURCE,
    NO_PROVIDER,
    Base,
    ScopedEntity,
    WorkspaceScoped,
    new_id,
)


class _Call:
    """What one API call was and who made it (shared by the audit record and the user event)."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    path_params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    query_params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    body: Mapped[Any | None] = mapped_column(JSONB(none_as_null=True))
    resource_type: Mapped[str | None] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    request_id: Mapped[str | None] = mapped_column(String(64))


class AuditRecord(_Call, ScopedEntity, Base):
    """One authorized, successful call in a workspace. Append-only for the runtime role.

    `state` is the resource's representation after a write (the response body, redacted): the
    history of a resource is the difference between consecutive states. `seq`, `prev_hash` and
    `hash` are filled in by the sealer after commit (null until then).
    """

    __tablename__ = "audit_record"
    __provider__ = ABOUT_A_RESOURCE
    __resource__ = "audit"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    state: Mapped[Any | None] = mapped_column(JSONB(none_as_null=True))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    sealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditCut(WorkspaceScoped, Base):
    """Retention removed the chain up to `up_to_seq`; `last_hash` is that record's hash, so the
    chain still verifies from the first record that remains."""

    __tablename__ = "audit_cut"
    __provider__ = NO_PROVIDER

    up_to_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    removed: Mapped[int] = mapped_column(Integer, nullable=False)
    cut_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


# Whose denial log a refused call lands in when nobody could be authenticated.
NOBODY = uuid.UUID(int=0)


class AuditDenial(Base):
    """A refused call (401/403/404) on a scoped route, filed under the actor, never under the
    target workspace. Per-user table keyed `(user_id, id)`; `user_id` is `NOBODY` when the
    caller could not be authenticated, and such rows are visible only to platform admins
    (through `warden_platform_denials`, which reports them without a user)."""

    __tablename__ = "audit_denial"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(300), nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    workspace_slug: Mapped[str | None] = mapped_column(String(63))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    request_id: Mapped[str | None] = mapped_column(String(64))


class UserEvent(_Call, Base):
    """A call outside any workspace (login, refresh, logout, /api/v1/me, …), in the user's own
    log. Per-user table: the policy is on `user_id`."""

    __tablename__ = "user_event"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
