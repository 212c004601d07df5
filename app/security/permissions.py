"""The permission registry: every permission key, and what each built-in role holds.

Invariant: this module is the only place that says which role may do what. Routes declare the
key they need (`require(...)`); the README's matrix is generated from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PERMISSIONS: dict[str, str] = {
    "provider.read": "List and read providers",
    "provider.create": "Create providers",
    "provider.update": "Change providers",
    "provider.delete": "Delete providers",
    "provider_group.read": "List and read provider groups",
    "provider_group.manage": "Create, change and delete provider groups and their providers",
    "member.read": "List members",
    "member.manage": "Add, change and remove members",
    "role.manage": "Create, change and delete custom roles",
    "workspace.update": "Change workspace settings",
    "workspace.delete": "Delete the workspace",
    "billing.manage": "Manage billing",
    "audit.read": "Read the audit log and resource history",
    "change.read": "List and read change requests",
    "change.create": "Create and submit change requests",
    "change.approve": "Approve or reject change requests",
    "change.bulk_approve": "Approve several change requests at once",
    "incident.read": "List and read incidents",
    "incident.create": "Open incidents",
    "incident.update": "Change incidents",
    "scan.read": "List and read scans",
    "scan.create": "Import scans",
    "finding.read": "List and read findings",
    "finding.mute": "Mute findings",
    "task.read": "Read background tasks",
    "task.cancel": "Cancel pending background tasks",
    "unlimited_visibility": "See every provider, not only those of assigned provider groups",
}

_READ = frozenset(
    {
        "provider.read",
        "provider_group.read",
        "member.read",
        "change.read",
        "incident.read",
        "scan.read",
        "finding.read",
        "task.read",
        "unlimited_visibility",
    }
)

_ENGINEER = _READ | {
    "provider.create",
    "provider.update",
    "provider.delete",
    "change.create",
    "incident.create",
    "incident.update",
    "scan.create",
    "finding.mute",
    "task.cancel",
}

_ADMIN = _ENGINEER | {
    "provider_group.manage",
    "member.manage",
    "workspace.update",
    "audit.read",
    "change.approve",
    "change.bulk_approve",
}

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "owner": frozenset(PERMISSIONS),
    "admin": frozenset(_ADMIN),
    "approver": _READ | {"change.approve"},
    "engineer": frozenset(_ENGINEER),
    "viewer": _READ,
    "platform_admin": _READ,
}

ROLE_NAMES = tuple(BUILTIN_ROLES)


class UnknownPermission(ValueError):
    pass


def validate_keys(keys: list[str]) -> list[str]:
    """Custom-role grants/revokes must be registered keys (400 otherwise)."""
    unknown = sorted(set(keys) - set(PERMISSIONS))
    if unknown:
        raise UnknownPermission(
            f"unknown permission(s): {', '.join(unknown)}; see GET /api/v1/permissions"
        )
    return sorted(set(keys))


def effective_permissions(
    role: str | None,
    inherits_from: str | None = None,
    grants: Iterable[str] = (),
    revokes: Iterable[str] = (),
) -> frozenset[str]:
    """A built-in role's set, or a custom role's base + grants − revokes (revokes beat
    grants). Unknown keys stored in the database count for nothing."""
    if role is not None:
        return BUILTIN_ROLES.get(role, frozenset())
    base = BUILTIN_ROLES.get(inherits_from or "", frozenset())
    return frozenset((base | set(grants)) - set(revokes)) & frozenset(PERMISSIONS)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class RoleSpec:
    """The role a membership holds: a built-in `role`, or a custom role (`custom_name`,
    `inherits_from`, `grants`, `revokes`).

    The one resolver: `permissions` is what every check reads, and `decide` is the same
    resolution with the reason that decided it (for `/me/has-permission` and 403 messages)."""

    role: str | None
    custom_name: str | None = None
    inherits_from: str | None = None
    grants: tuple[str, ...] = ()
    revokes: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        """The built-in role whose row grants and field rules apply."""
        return self.role or self.inherits_from or ""

    @property
    def permissions(self) -> frozenset[str]:
        return effective_permissions(self.role, self.inherits_from, self.grants, self.revokes)

    def decide(self, permission: str) -> Decision:
        if permission not in PERMISSIONS:
            return Decision(False, f"'{permission}' is not a permission")
        held = permission in self.permissions
        if self.role is not None:
            verb = "includes" if held else "does not include"
            return Decision(held, f"built-in role '{self.role}' {verb} it")
        label = f"custom role '{self.custom_name}'"
        if permission in self.revokes:
            return Decision(False, f"{label} revokes it (revokes beat grants)")
        if permission in self.grants:
            return Decision(held, f"{label} grants it")
        verb = "includes" if held else "does not include"
        return Decision(held, f"{label} inherits from '{self.inherits_from}', which {verb} it")


def matrix_markdown() -> str:
    """The README's permission matrix, generated from the registry."""
    roles = list(BUILTIN_ROLES)
    lines = [
        "| Permission | " + " | ".join(roles) + " | Meaning |",
        "| --- | " + " | ".join(":-:" for _ in roles) + " | --- |",
    ]
    for key, meaning in PERMISSIONS.items():
        marks = " | ".join("✓" if key in BUILTIN_ROLES[r] else "" for r in roles)
        lines.append(f"| `{key}` | {marks} | {meaning} |")
    return "\n".join(lines)
