"""Idempotency keys: a POST's response, stored in the transaction that made its effects, so a
retry with the same key gets that response instead of doing the work twice."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, LargeBinary, SmallInteger, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import NO_PROVIDER, Base, WorkspaceScoped


class _StoredResponse:
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[int | None] = mapped_column(SmallInteger)
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class IdempotencyKey(_StoredResponse, WorkspaceScoped, Base):
    """A key of a workspace route: per workspace and user (policy on both)."""

    __tablename__ = "idempotency_key"
    __provider__ = NO_PROVIDER  # never listed; read back only by its own user

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )


class UserIdempotencyKey(_StoredResponse, Base):
    """A key of the caller's own routes (no workspace): per user (policy on `user_id`)."""

    __tablename__ = "user_idempotency_key"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
