"""Users, workspaces, memberships and refresh-token sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID
from sqlalchemy.orm import Mapped, deferred, mapped_column

from app.db.base import NO_PROVIDER, Base, Timestamps, WorkspaceScoped, new_id


class User(Timestamps, Base):
    """A person. Global (not workspace-scoped), under a per-user policy: the runtime role sees
    only the row of the user in context (`app.current_user_id`) and updates none.

    The runtime role has no SELECT on `password_hash`: the ORM never loads it (deferred +
    raiseload), login reads it through the `warden_login_lookup` definer function and a new one
    is stored through `warden_change_password` (compare-and-swap). Users are created only
    through `warden_register_user`; other users are reached through `app.services.users`.
    """

    __tablename__ = "app_user"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    password_hash: Mapped[str] = deferred(mapped_column(Text, nullable=False), raiseload=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Installation-level, read-only cross-workspace access (`warden platform-admin`); the
    # runtime role cannot UPDATE this column.
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())


class Workspace(Timestamps, Base):
    """A tenant. Its own row is visible only inside its own context (policy on `id`)."""

    __tablename__ = "workspace"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Audit records older than this are removed by the retention job (null: kept forever).
    audit_retention_days: Mapped[int | None] = mapped_column(Integer, server_default=text("365"))
    # Members without a second factor get 403 `mfa_required` on every route of the workspace.
    require_mfa: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())


class Membership(WorkspaceScoped, Timestamps, Base):
    """A user's role in one workspace (built-in role name, or a custom role)."""

    __tablename__ = "membership"
    __provider__ = NO_PROVIDER
    __resource__ = "member"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
    role: Mapped[str | None] = mapped_column(String(40))
    custom_role_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    # Added by the IdP group sync, which changes or removes only such memberships.
    managed_by_idp: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())


class AuthSession(Base):
    """One refresh token of a login family. Per-user table (policy on `user_id`).

    A family is one login; each refresh rotates to a new row. Presenting a rotated token again
    revokes the whole family. Access tokens carry the family id, so revocation takes effect on
    the next request, not at token expiry.
    """

    __tablename__ = "auth_session"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("app_user.id"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    ip: Mapped[str | None] = mapped_column(INET)
