"""Who is acting, and the one way their workspace context is built and entered.

Invariant: requests and jobs build a member's principal with the same function
(`principal_from_row`, from the row both membership lookups return) and enter the workspace
with the same function (`enter_workspace`): the `SET LOCAL`s, provider visibility, the row
criteria derived from the grants, and the field rules. A test builds both for the same members
and compares them. A caller using an API key gets the same principal narrowed by the key's
limits: its permissions, visibility (`unlimited_visibility` is a permission), every check and
every explanation (`decide`) read the narrowed set.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.tenant import Visibility, apply_context
from app.db.transaction import Transaction
from app.security.api_keys import KeyLimits
from app.security.fields import FieldRule, current_rules, rules_for
from app.security.grants import row_scope
from app.security.permissions import Decision, RoleSpec

# The membership columns both lookups return (the request's, with the session check and the
# slug, and the job's, by workspace id).
REQUEST_CONTEXT_SQL = (
    "SELECT authenticated, workspace_id, role, custom_role_id, custom_role_name, inherits_from, "
    "grants, revokes, visible_provider_ids, attributes, require_mfa, mfa_enabled "
    "FROM warden_request_context($1, $2, $3)"
)
# The same membership columns, for the user of the key with this prefix (and the key itself).
KEY_CONTEXT_SQL = (
    "SELECT key_id, key_kind, secret_hash, user_id, key_workspace_id, key_permissions, "
    "permitted_endpoints, expires_at, last_used_at, authenticated, workspace_id, role, "
    "custom_role_id, custom_role_name, inherits_from, grants, revokes, visible_provider_ids, "
    "attributes, require_mfa, mfa_enabled FROM warden_api_key_context($1, $2)"
)
MEMBER_CONTEXT_SQL = (
    "SELECT role, custom_role_id, custom_role_name, inherits_from, grants, revokes, "
    "visible_provider_ids, attributes, workspace_deleted "
    "FROM warden_member_context($1, $2)"
)


@dataclass(frozen=True)
class UserPrincipal:
    """A signed-in user outside any workspace: the login family their token belongs to, or the
    API key they called with (`key`, then `family_id` is None)."""

    user_id: uuid.UUID
    family_id: uuid.UUID | None
    key: KeyLimits | None = None

    @property
    def api_key_id(self) -> uuid.UUID | None:
        return self.key.key_id if self.key is not None else None


@dataclass(frozen=True, eq=True)
class WorkspacePrincipal:
    """A member of one workspace, as read fresh for this unit of work."""

    user_id: uuid.UUID
    workspace_id: uuid.UUID
    spec: RoleSpec
    custom_role_id: uuid.UUID | None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    visible_provider_ids: tuple[uuid.UUID, ...] = ()
    key: KeyLimits | None = None  # the API key the caller used: it narrows everything below
    mfa_missing: bool = False  # the workspace requires MFA and the user has not turned it on

    @cached_property
    def permissions(self) -> frozenset[str]:
        if self.mfa_missing:
            return frozenset()
        held = self.spec.permissions
        return held if self.key is None else self.key.narrow(held)

    @property
    def api_key_id(self) -> uuid.UUID | None:
        return self.key.key_id if self.key is not None else None

    @property
    def role(self) -> str | None:
        """The built-in role, or None for a custom role."""
        return self.spec.role

    @property
    def base_role(self) -> str:
        return self.spec.base

    @property
    def is_owner(self) -> bool:
        return self.spec.role == "owner"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def decide(self, permission: str) -> Decision:
        """The one resolver's answer, with the reason; what an API key or the workspace's
        MFA requirement withholds says so."""
        decision = self.spec.decide(permission)
        if not decision.allowed or permission in self.permissions:
            return decision
        if self.mfa_missing:
            return Decision(False, "the workspace requires MFA, and you have not turned it on")
        why = self.key.why_not(permission) if self.key is not None else None
        return Decision(False, f"{decision.reason}, but {why or 'it is withheld'}")

    @property
    def visibility(self) -> Visibility:
        if self.can("unlimited_visibility"):
            return Visibility(True)
        return Visibility(False, self.visible_provider_ids)

    @cached_property
    def field_rules(self) -> Mapping[str, FieldRule]:
        return rules_for([self.base_role])

    @cached_property
    def rows(self) -> tuple[tuple[Any, ...], Mapping[type, Any]]:
        """(key, row criteria per entity): the grants and what derives from them."""
        return row_scope([self.base_role], self.attributes, unlimited=self.visibility.unlimited)

    @property
    def unrestricted(self) -> bool:
        """Sees every row of the workspace: unlimited visibility and no row criteria."""
        return self.visibility.unlimited and not self.rows[1]


def principal_from_row(
    user_id: uuid.UUID,
    workspace_id: uuid.UUID,
    row: Mapping[str, Any],
    key: KeyLimits | None = None,
) -> WorkspacePrincipal:
    """The one principal builder (requests and jobs alike), narrowed by `key` when the caller
    used one. Rows that carry the MFA columns (requests) also say whether the workspace's MFA
    requirement is unmet."""
    attributes = row["attributes"]
    return WorkspacePrincipal(
        user_id=user_id,
        workspace_id=workspace_id,
        spec=RoleSpec(
            role=row["role"],
            custom_name=row["custom_role_name"],
            inherits_from=row["inherits_from"],
            grants=tuple(row["grants"] or ()),
            revokes=tuple(row["revokes"] or ()),
        ),
        custom_role_id=row["custom_role_id"],
        attributes=MappingProxyType(dict(attributes) if attributes else {}),
        visible_provider_ids=tuple(row["visible_provider_ids"] or ()),
        key=key,
        mfa_missing=bool(row.get("require_mfa") and not row.get("mfa_enabled")),
    )


async def enter_workspace(
    tx: Transaction, principal: WorkspacePrincipal, slug: str | None = None
) -> WorkspaceContext:
    """The one context application: the `SET LOCAL`s (workspace, user, visibility), then the
    principal's row criteria and field rules for everything that runs in `tx`."""
    await apply_context(tx, principal.workspace_id, principal.user_id, principal.visibility)
    tx.info["row_filter_key"], tx.info["row_filters"] = principal.rows
    context = WorkspaceContext(tx, principal, slug)
    current_rules.set(principal.field_rules)
    current_workspace.set(context)
    return context


@dataclass
class UserContext:
    tx: Transaction
    principal: UserPrincipal

    @property
    def session(self) -> AsyncSession:
        return self.tx.session


@dataclass
class WorkspaceContext:
    """What every workspace service takes: the transaction (in the workspace's context) and
    the principal. `slug` is the workspace's slug when the work came in by HTTP."""

    tx: Transaction
    principal: WorkspacePrincipal
    slug: str | None = None

    @property
    def session(self) -> AsyncSession:
        """The ORM session of the transaction, scoped to its workspace."""
        return self.tx.session

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.principal.workspace_id

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id


current_workspace: contextvars.ContextVar[WorkspaceContext | None] = contextvars.ContextVar(
    "workspace_context", default=None
)
