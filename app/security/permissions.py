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


def role_permissions(role: str) -> frozenset[str]:
    return BUILTIN_ROLES.get(role, frozenset())
