"""Providers (cloud accounts) and provider groups."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKeyConstraint, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import (
    HAS_PROVIDER,
    IS_PROVIDER,
    NO_PROVIDER,
    Base,
    ScopedEntity,
    Timestamps,
    WorkspaceScoped,
)


class Provider(ScopedEntity, Timestamps, Base):
    __tablename__ = "provider"
    __provider__ = IS_PROVIDER

    provider_type: Mapped[str] = mapped_column(String(20), nullable=False)
    uid: Mapped[str] = mapped_column(String(300), nullable=False)
    alias: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(40))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderGroup(ScopedEntity, Timestamps, Base):
    __tablename__ = "provider_group"
    __provider__ = NO_PROVIDER

    name: Mapped[str] = mapped_column(String(100), nullable=False)


class ProviderGroupMember(WorkspaceScoped, Base):
    """Provider ↔ group mapping; `workspace_id` is in both foreign keys, so a group can never
    hold another workspace's provider."""

    __tablename__ = "provider_group_member"
    __provider__ = HAS_PROVIDER
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "provider_group_id"],
            ["provider_group.workspace_id", "provider_group.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["workspace_id", "provider_id"],
            ["provider.workspace_id", "provider.id"],
            ondelete="CASCADE",
        ),
    )

    provider_group_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
