"""The permission registry: every permission key, and what each built-in role holds.

Invariant: this module is the only place that says which role may do what. Routes declare the
key they need (`require(...)` in app.security.deps); the README's matrix is generated from here.
"""

from __future__ import annotations

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
    grants: list[str] | tuple[str, ...] = (),
    revokes: list[str] | tuple[str, ...] = (),
) -> frozenset[str]:
    """The one resolver: a built-in role's set, or a custom role's base + grants − revokes
    (revokes beat grants). Unknown keys stored in the database count for nothing."""
    if role is not None:
        return BUILTIN_ROLES.get(role, frozenset())
    base = BUILTIN_ROLES.get(inherits_from or "", frozenset())
    return frozenset((base | set(grants)) - set(revokes)) & frozenset(PERMISSIONS)


def explain(
    permission: str,
    role: str | None,
    custom_role_name: str | None = None,
    inherits_from: str | None = None,
    grants: list[str] | tuple[str, ...] = (),
    revokes: list[str] | tuple[str, ...] = (),
) -> tuple[bool, str]:
    """Whether `permission` is held, and which role, grant or revoke decided it."""
    if permission not in PERMISSIONS:
        return False, f"'{permission}' is not a permission"
    if role is not None:
        held = permission in BUILTIN_ROLES.get(role, frozenset())
        return held, f"built-in role '{role}' {'includes' if held else 'does not include'} it"
    label = f"custom role '{custom_role_name}'"
    if permission in revokes:
        return False, f"{label} revokes it (revokes beat grants)"
    if permission in grants:
        return True, f"{label} grants it"
    held = permission in BUILTIN_ROLES.get(inherits_from or "", frozenset())
    verb = "includes" if held else "does not include"
    return held, f"{label} inherits from '{inherits_from}', which {verb} it"


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
