"""Custom roles and their provider-group assignments."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKeyConstraint, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import NO_PROVIDER, Base, ScopedEntity, Timestamps, WorkspaceScoped


class CustomRole(ScopedEntity, Timestamps, Base):
    """A built-in base role plus grants minus revokes (revokes beat grants)."""

    __tablename__ = "custom_role"
    __provider__ = NO_PROVIDER
    __resource__ = "role"

    name: Mapped[str] = mapped_column(String(100), nullable=False)
    inherits_from: Mapped[str] = mapped_column(String(40), nullable=False)
    grants: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list)
    revokes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list)


class RoleProviderGroup(WorkspaceScoped, Base):
    """A provider group visible to a role that lacks `unlimited_visibility`."""

    __tablename__ = "role_provider_group"
    __provider__ = NO_PROVIDER
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "provider_group_id"],
            ["provider_group.workspace_id", "provider_group.id"],
            ondelete="CASCADE",
        ),
    )

    role_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider_group_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
