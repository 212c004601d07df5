"""Incidents and their timeline of status changes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, ForeignKeyConstraint, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import MAY_HAVE_PROVIDER, Base, ScopedEntity, Timestamps, belongs_to

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
INCIDENT_STATUSES = ("open", "investigating", "mitigated", "resolved", "closed")


class Incident(ScopedEntity, Timestamps, Base):
    """Something went wrong; someone is on it. Follows its provider's visibility, if any."""

    __tablename__ = "incident"
    __provider__ = MAY_HAVE_PROVIDER
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
    )

    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(4), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    provider_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id")
    )
    resolution: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), nullable=False
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IncidentEvent(ScopedEntity, Base):
    """One status change of an incident (its opening included). Never changed once written."""

    __tablename__ = "incident_event"
    __provider__ = belongs_to("incident", "incident_id")
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "incident_id"], ["incident.workspace_id", "incident.id"]
        ),
    )

    incident_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
