"""Change requests and their approval decisions.

Separation of duties is kept by the database too: a decision row carries the change's requester,
copied through a foreign key to the change's `(workspace_id, id, requested_by)` (so it cannot be
anyone else), and a CHECK refuses a decision whose approver is that requester; the primary key
allows one decision per person per change.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import (
    MAY_HAVE_PROVIDER,
    Base,
    ScopedEntity,
    Timestamps,
    WorkspaceScoped,
    belongs_to,
)

CHANGE_STATES = ("draft", "submitted", "approved", "rejected", "implemented", "cancelled")
RISKS = ("low", "medium", "high")
DECISIONS = ("approve", "reject")


class ChangeRequest(ScopedEntity, Timestamps, Base):
    """A change someone asks to make; others approve it. A change about a provider is seen by
    whoever sees that provider; one about none by every member."""

    __tablename__ = "change_request"
    __provider__ = MAY_HAVE_PROVIDER
    __resource__ = "change"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
        UniqueConstraint("workspace_id", "id", "requested_by"),
    )

    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    risk: Mapped[str] = mapped_column(String(10), nullable=False)
    provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    planned_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    planned_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    required_approvals: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=1)
    approval_count: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    state: Mapped[str] = mapped_column(String(12), nullable=False, default="draft")
    requested_by: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), nullable=False
    )
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    implemented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    implemented_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id")
    )
    implementation_notes: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChangeApproval(WorkspaceScoped, Base):
    """One person's decision on one change (approve or reject). Never changed once written."""

    __tablename__ = "change_approval"
    __provider__ = belongs_to("change_request", "change_id")
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "change_id", "requested_by"],
            [
                "change_request.workspace_id",
                "change_request.id",
                "change_request.requested_by",
            ],
        ),
    )

    change_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    approver_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
    requested_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    decision: Mapped[str] = mapped_column(String(8), nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
