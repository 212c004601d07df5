"""Who is calling, as established for one request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class UserPrincipal:
    user_id: uuid.UUID
    family_id: uuid.UUID


@dataclass(frozen=True)
class WorkspacePrincipal(UserPrincipal):
    """A member of one workspace; membership and role were read fresh for this request."""

    workspace_id: uuid.UUID
    slug: str
    role: str | None
    custom_role_id: uuid.UUID | None
    permissions: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass
class UserContext:
    session: AsyncSession
    principal: UserPrincipal


@dataclass
class WorkspaceContext:
    session: AsyncSession
    principal: WorkspacePrincipal

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.principal.workspace_id
