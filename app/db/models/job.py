"""Background tasks and the transactional outbox that delivers their jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import HAS_PROVIDER, NO_PROVIDER, Base, ScopedEntity

TASK_STATES = ("pending", "running", "succeeded", "failed", "refused", "cancelled")
TERMINAL_STATES = frozenset({"succeeded", "failed", "refused", "cancelled"})


class Task(ScopedEntity, Base):
    """What a client polls after a `202 Accepted`: state, progress, result, error, timings.
    A task about a provider's data (an import) is visible to whoever sees that provider."""

    __tablename__ = "task"
    __provider__ = HAS_PROVIDER
    # An import's result and error name the accounts its report holds.
    __embeds__ = {"uid": ("result", "error")}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
    )

    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    progress: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    progress_detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # While running: which delivery holds the task (its lease id), until when (renewed by the
    # job's heartbeat) and on which worker. A lease that expired lets another delivery take
    # over; only the holder can record the outcome.
    lease_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    leased_by: Mapped[str | None] = mapped_column(String(200))
    resource_type: Mapped[str | None] = mapped_column(String(40))
    resource_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # Wall-clock time of each change (not the transaction's start): progress writes show
    # a live worker, and the stuck-task sweep keys on it. The statement's start, not
    # clock_timestamp(): Citus refuses volatile functions in UPDATEs of distributed tables.
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        onupdate=func.statement_timestamp(),
        nullable=False,
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Outbox(ScopedEntity, Base):
    """One job to deliver to arq, written in the transaction that asked for it.

    The arq job id is this row's id, so a second delivery of the same row is a no-op in Redis,
    and the job itself skips a row that is already done. `user_id` is the member in whose name
    the job runs (its membership and permission are re-checked when the job starts).
    """

    __tablename__ = "outbox"
    __provider__ = NO_PROVIDER  # never exposed; the job re-checks its task
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "task_id"], ["task.workspace_id", "task.id"], ondelete="CASCADE"
        ),
    )

    job: Mapped[str] = mapped_column(String(60), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), nullable=False
    )
    task_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    args: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
