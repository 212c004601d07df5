"""No escalation: nobody gives anyone, themselves included, access they do not hold.

Invariant: every route that creates, edits, deletes or assigns a role (members, invitations,
identity-provider group mappings, custom roles), changes a member's attributes, or changes or
removes a member calls `ensure_within` with the caller's access and the access in question
(the role being defined, a member's access before and after the change). It is the one rule, in
one place. What holding a role gives is compared on every axis the kernel enforces:

- only owners (the built-in role) make, edit or assign anything based on `owner`;
- permissions: a subset of the caller's;
- provider visibility: a caller limited to some provider groups gives no group beyond theirs;
- fields: the role hides and protects at least what the caller's role hides and protects (a
  role of another base with the same permissions must not un-hide provider uids);
- rows: a caller whose rows are limited by grants gives no rows beyond their own — for a given
  member, the member's rows must be within the caller's; for a role definition, whoever holds
  it, its base must be limited by the caller's own grants (nothing but the members' attribute
  values, checked whenever they are set, can then widen it).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from app.errors import Forbidden
from app.security.fields import rules_for
from app.security.grants import GRANTS, Attributes, Grant
from app.security.permissions import RoleSpec

UNLIMITED = "unlimited_visibility"


@dataclass(frozen=True)
class Access:
    """What holding `spec` gives: its permissions; when it lacks unlimited visibility, the
    provider groups it sees (`group_ids`); its field rules (by its base); and, for a given
    member, the rows its grants allow with that member's `attributes` (None for a role
    definition, whoever holds it; `{}` for holders yet unknown, who may have no attribute)."""

    spec: RoleSpec
    group_ids: frozenset[uuid.UUID] = frozenset()
    attributes: Attributes | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return self.spec.permissions


Conjunct = Mapping[str, frozenset[str]]  # column -> allowed values (a grant's AND)


def _grants(base: str, resource: type) -> list[Grant]:
    return [g for g in GRANTS if g.resource is resource and base in g.roles]


def _scope(access: Access, resource: type) -> list[Conjunct] | None:
    """The rows of `resource` the access allows, as an OR of ANDs; None when unrestricted."""
    assert access.attributes is not None
    conjuncts: list[Conjunct] = []
    for grant in _grants(access.spec.base, resource):
        parts = {f.column: f.values(access.attributes) for f in grant.filters}
        applied = {c: v for c, v in parts.items() if v is not None}
        if not applied:
            return None  # one unrestricted grant opens the resource
        conjuncts.append(applied)
    return conjuncts or None


def _rows_within(target: list[Conjunct] | None, caller: list[Conjunct] | None) -> bool:
    if caller is None:
        return True
    if target is None:
        return False
    return all(
        any(all(col in t and t[col] <= values for col, values in c.items()) for c in caller)
        for t in target
    )


def _fields_beyond(caller: Access, target: Access) -> list[str]:
    """Fields the caller's role hides or protects that the target's would not."""
    mine, theirs = rules_for([caller.spec.base]), rules_for([target.spec.base])
    out = []
    for resource, rule in sorted(mine.items()):
        other = theirs.get(resource)
        shown = (rule.exclude | rule.masked) - (
            (other.exclude | other.masked) if other else frozenset()
        )
        free = rule.restricted - (other.restricted if other else frozenset())
        out += [f"{resource}.{name} (hidden from you)" for name in sorted(shown)]
        out += [f"{resource}.{name} (you may not change it)" for name in sorted(free)]
        if rule.updatable_only is not None:
            wider = None if other is None or other.updatable_only is None else other.updatable_only
            if wider is None or not wider <= rule.updatable_only:
                out.append(f"{resource} fields beyond those you may change")
    return out


def beyond(caller: Access, target: Access, *, caller_is_owner: bool) -> list[str]:
    """What `target` gives that `caller` does not hold (empty when it is within)."""
    out: list[str] = []
    if target.spec.base == "owner" and not caller_is_owner:
        out.append("only owners give or change owner-based roles")
    extra = target.permissions - caller.permissions
    if extra:
        out.append("permissions you do not hold: " + ", ".join(sorted(extra)))
    if UNLIMITED not in caller.permissions and UNLIMITED not in target.permissions:
        groups = target.group_ids - caller.group_ids
        if groups:
            out.append("provider groups you do not see: " + ", ".join(sorted(map(str, groups))))
    fields = _fields_beyond(caller, target)
    if fields:
        out.append("fields: " + ", ".join(fields))
    assert caller.attributes is not None
    for resource in sorted({g.resource for g in GRANTS}, key=lambda r: r.__name__):
        name = resource.__tablename__  # type: ignore[attr-defined]
        mine = _scope(caller, resource)
        if mine is None:
            continue
        if target.attributes is not None:
            if not _rows_within(_scope(target, resource), mine):
                out.append(f"{name} rows you do not see")
        else:
            theirs = _grants(target.spec.base, resource)
            own = _grants(caller.spec.base, resource)
            if not theirs or any(g not in own for g in theirs):
                out.append(f"{name} rows beyond your own grants, for whoever holds it")
    return out


def ensure_within(caller: Access, target: Access, what: str, *, caller_is_owner: bool) -> None:
    """Refuse (403) when `target` gives anything `caller` does not hold; `what` names it."""
    problems = beyond(caller, target, caller_is_owner=caller_is_owner)
    if problems:
        raise Forbidden(f"You cannot {what}: it gives " + "; ".join(problems))
