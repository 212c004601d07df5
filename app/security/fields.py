"""Declarative field rules per resource and role (SPEC section 4), and what follows from them.

- `exclude`: removed from every response (lists and nested objects too) and refused (403) in any
  write; an excluded field cannot be filtered, sorted, searched or listed either: it answers
  like a field that does not exist.
- `updatable_only`: when set, a PATCH may touch only these fields.
- `restricted`: a PATCH touching these fields is refused.

A provider field hidden from a role is hidden in every form. Tables linked to a provider declare
which of their columns can embed a provider field's value (`__embeds__`: a resource ARN holds
the account id); for that role those columns are `masked`: shown with every hidden value
replaced by `MASK`, and not queryable. The values themselves are masked in every response about
a provider-linked resource (and in the audit log), wherever they occur.

Applied centrally: the principal's rules are installed when its workspace context is entered
(`current_rules`); response models drop excluded fields while serializing, input models refuse
forbidden keys while validating. Nothing in a handler deals with them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType

from app.db.base import scoped_entities
from app.errors import Forbidden

MASK = "[hidden]"
PROVIDER = "provider"


@dataclass(frozen=True)
class FieldRule:
    exclude: frozenset[str] = field(default_factory=frozenset)
    updatable_only: frozenset[str] | None = None
    restricted: frozenset[str] = field(default_factory=frozenset)
    masked: frozenset[str] = field(default_factory=frozenset)


FIELD_RULES: dict[str, dict[str, FieldRule]] = {
    # Account ids are what an attacker needs to aim at a cloud account: viewers see providers
    # by alias, type and region only.
    # `region` drives row grants: changing it changes who sees the provider, so no base below
    # admin may (whatever a custom role on that base is granted).
    PROVIDER: {
        "viewer": FieldRule(exclude=frozenset({"uid"}), restricted=frozenset({"region"})),
        "approver": FieldRule(restricted=frozenset({"region"})),
        "engineer": FieldRule(restricted=frozenset({"region"})),
    },
    # Viewers see who is a member and their role, not their email address.
    "member": {"viewer": FieldRule(exclude=frozenset({"email"}))},
}


def rules_for(roles: Iterable[str]) -> Mapping[str, FieldRule]:
    """Combine the rules of several roles: a field stays hidden or restricted only if every
    role hides or restricts it (like grants, roles widen access, they never narrow it); then
    mask, in every provider-linked table, the columns that embed a hidden provider field."""
    return _rules_for(tuple(sorted(set(roles))))


@lru_cache(maxsize=256)
def _rules_for(role_list: tuple[str, ...]) -> Mapping[str, FieldRule]:
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
    hidden = out.get(PROVIDER, FieldRule()).exclude
    if hidden:
        for entity in scoped_entities():
            link = entity.__provider__
            if not (link.column or link.by_reference) or entity.__resource__ == PROVIDER:
                continue
            masked = frozenset(c for f in hidden for c in entity.__embeds__.get(f, ()))
            if masked:
                rule = out.get(entity.__resource__, FieldRule())
                out[entity.__resource__] = replace(rule, masked=rule.masked | masked)
    return MappingProxyType(out)


current_rules: contextvars.ContextVar[Mapping[str, FieldRule]] = contextvars.ContextVar(
    "field_rules", default=MappingProxyType({})
)


def excluded(resource: str) -> frozenset[str]:
    """Fields of `resource` left out of the caller's responses."""
    rule = current_rules.get().get(resource)
    return rule.exclude if rule else frozenset()


def unqueryable(resource: str) -> frozenset[str]:
    """Fields of `resource` the caller may not filter, sort, search or list: the excluded and
    the masked ones."""
    rule = current_rules.get().get(resource)
    return rule.exclude | rule.masked if rule else frozenset()


def hidden_provider_fields(rules: Mapping[str, FieldRule]) -> frozenset[str]:
    """The provider fields whose values are masked in the caller's responses."""
    rule = rules.get(PROVIDER)
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
