"""Credentials beside the password: API keys (personal and workspace service keys), the TOTP
second factor, identities at an external IdP, and the IdP groups a workspace maps to roles."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, declared_attr, deferred, mapped_column

from app.db.base import NO_PROVIDER, Base, ScopedEntity, new_id


class KeyColumns:
    """What personal and service keys share. The runtime role may write `secret_hash` once but
    never read it (deferred + raiseload; lookups go through `warden_api_key_context`)."""

    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)

    @declared_attr
    def secret_hash(cls) -> Mapped[bytes]:  # noqa: N805
        return deferred(mapped_column(LargeBinary, nullable=False), raiseload=True)

    permissions: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    permitted_endpoints: Mapped[list[dict[str, str]] | None] = mapped_column(JSONB)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class ApiKey(KeyColumns, Base):
    """A personal key: acts as its user, narrowed. Per-user table (policy on `user_id`)."""

    __tablename__ = "api_key"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    bound_workspace_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class ServiceKey(KeyColumns, ScopedEntity, Base):
    """A workspace's key for a service: acts as the member who made it, always bound to the
    workspace, narrowed like a personal key; listed and revoked by the workspace's admins."""

    __tablename__ = "service_key"
    __provider__ = NO_PROVIDER

    created_by: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), nullable=False
    )


class UserMfa(Base):
    """A user's TOTP factor: the encrypted secret, when it was turned on, the last time step
    accepted (a code is accepted once), and the hashes of the unused recovery codes."""

    __tablename__ = "user_mfa"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
    totp_secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    recovery_hashes: Mapped[list[bytes]] = mapped_column(
        ARRAY(LargeBinary), nullable=False, default=list
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class UserIdentity(Base):
    """The user's identity at an external IdP (`issuer` + `subject`). Per-user table."""

    __tablename__ = "user_identity"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(400), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class IdpGroupMapping(ScopedEntity, Base):
    """An IdP group whose members get a role in this workspace when they sign in."""

    __tablename__ = "idp_group_mapping"
    __provider__ = NO_PROVIDER
    __resource__ = "idp_group"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "custom_role_id"], ["custom_role.workspace_id", "custom_role.id"]
        ),
    )

    group_name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str | None] = mapped_column(String(40))
    custom_role_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
