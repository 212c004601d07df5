"""Declarative field rules per resource and role (SPEC section 4).

- `exclude`: removed from every response (lists and nested objects too) and refused (403) in any
  write; an excluded field also cannot be filtered, sorted or searched on.
- `updatable_only`: when set, a PATCH may touch only these fields.
- `restricted`: a PATCH touching these fields is refused.

Applied centrally: `get_workspace_session` puts the principal's rules in `current_rules`;
`Output` models drop excluded fields while serializing, `Input` models refuse forbidden keys
while validating (app/schemas/common.py). Nothing in a handler deals with them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from app.errors import Forbidden


@dataclass(frozen=True)
class FieldRule:
    exclude: frozenset[str] = field(default_factory=frozenset)
    updatable_only: frozenset[str] | None = None
    restricted: frozenset[str] = field(default_factory=frozenset)


FIELD_RULES: dict[str, dict[str, FieldRule]] = {
    # Account ids are what an attacker needs to aim at a cloud account: viewers see providers
    # by alias, type and region only.
    "provider": {
        "viewer": FieldRule(exclude=frozenset({"uid"})),
        # `region` drives row grants: changing it changes who sees the provider, so engineers
        # may not.
        "engineer": FieldRule(restricted=frozenset({"region"})),
    },
    # Viewers see who is a member and their role, not their email address.
    "member": {"viewer": FieldRule(exclude=frozenset({"email"}))},
}


def rules_for(roles: Iterable[str]) -> dict[str, FieldRule]:
    """Combine the rules of several roles: a field stays hidden or restricted only if every
    role hides or restricts it (like grants, roles widen access, they never narrow it)."""
    role_list = list(roles)
    out: dict[str, FieldRule] = {}
    for resource, per_role in FIELD_RULES.items():
        rules = [per_role.get(r, FieldRule()) for r in role_list]
        if not rules:
            continue
        exclude = frozenset.intersection(*[r.exclude for r in rules])
        restricted = frozenset.intersection(*[r.restricted for r in rules])
        updatable = [r.updatable_only for r in rules]
        only = None if any(u is None for u in updatable) else frozenset().union(*updatable)  # type: ignore[arg-type]
        if exclude or restricted or only is not None:
            out[resource] = FieldRule(exclude=exclude, updatable_only=only, restricted=restricted)
    return out


current_rules: contextvars.ContextVar[Mapping[str, FieldRule]] = contextvars.ContextVar(
    "field_rules", default=MappingProxyType({})
)


def excluded(resource: str) -> frozenset[str]:
    rule = current_rules.get().get(resource)
    return rule.exclude if rule else frozenset()


def check_write(resource: str, keys: Iterable[str], *, update: bool) -> None:
    """Refuse a write that names an excluded field, or (PATCH) a field the role may not change."""
    rule = current_rules.get().get(resource)
    if rule is None:
        return
    keys = set(keys)
    hidden = keys & rule.exclude
    if hidden:
        raise Forbidden(f"Field(s) not available to your role: {', '.join(sorted(hidden))}")
    if update:
        blocked = keys & rule.restricted
        if rule.updatable_only is not None:
            blocked |= keys - rule.updatable_only
        if blocked:
            raise Forbidden(f"Your role may not change: {', '.join(sorted(blocked))}")
