"""Who is calling, as established for one request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.transaction import Transaction


@dataclass(frozen=True)
class UserPrincipal:
    user_id: uuid.UUID
    family_id: uuid.UUID


@dataclass(frozen=True)
class WorkspacePrincipal(UserPrincipal):
    """A member of one workspace; membership and role were read fresh for this request, and
    the effective permissions were resolved once for it (the per-request cache)."""

    workspace_id: uuid.UUID
    slug: str
    role: str | None
    custom_role_id: uuid.UUID | None
    custom_role_name: str | None = None
    inherits_from: str | None = None
    grants: tuple[str, ...] = ()
    revokes: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    permissions: frozenset[str] = field(default_factory=frozenset)

    @property
    def base_role(self) -> str:
        """The built-in role whose row grants and field rules apply."""
        return self.role or self.inherits_from or ""

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass
class UserContext:
    tx: Transaction
    principal: UserPrincipal

    @property
    def session(self) -> AsyncSession:
        return self.tx.session


@dataclass
class WorkspaceContext:
    tx: Transaction
    principal: WorkspacePrincipal

    @property
    def session(self) -> AsyncSession:
        """The ORM session of the request's transaction, scoped to its workspace."""
        return self.tx.session

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.principal.workspace_id
