"""No escalation: nobody gives anyone, themselves included, access they do not hold.

Invariant: every route that creates, edits, deletes or assigns a role, changes a member's
attributes, or changes or removes a member calls `ensure_within` with the caller's access and
the access in question (the role being defined, a member's access before and after the change).
It is the one rule, in one place:

- only owners (the built-in role) make, edit or assign anything based on `owner`;
- the permissions in question are a subset of the caller's;
- a caller limited to some provider groups gives no visibility beyond their own groups;
- a caller whose rows are limited by grants gives no member rows beyond their own: the
  member's role must be limited by the same grants, to values among the caller's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from app.errors import Forbidden
from app.security.grants import GRANTS, Attributes
from app.security.permissions import RoleSpec

UNLIMITED = "unlimited_visibility"


@dataclass(frozen=True)
class Access:
    """What holding `spec` gives: its permissions; when it lacks unlimited visibility, the
    provider groups it sees (`group_ids`); and, for a given member, the rows its grants allow
    with that member's `attributes` (None for a role definition, whoever holds it)."""

    spec: RoleSpec
    group_ids: frozenset[uuid.UUID] = frozenset()
    attributes: Attributes | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return self.spec.permissions


Conjunct = Mapping[str, frozenset[str]]  # column -> allowed values (a grant's AND)


def _scope(access: Access, resource: type) -> list[Conjunct] | None:
    """The rows of `resource` the access allows, as an OR of ANDs; None when unrestricted."""
    assert access.attributes is not None
    conjuncts: list[Conjunct] = []
    for grant in GRANTS:
        if grant.resource is not resource or access.spec.base not in grant.roles:
            continue
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
    if target.attributes is not None and caller.attributes is not None:
        for resource in sorted({g.resource for g in GRANTS}, key=lambda r: r.__name__):
            if not _rows_within(_scope(target, resource), _scope(caller, resource)):
                out.append(f"{resource.__tablename__} rows you do not see")  # type: ignore[attr-defined]
    return out


def ensure_within(caller: Access, target: Access, what: str, *, caller_is_owner: bool) -> None:
    """Refuse (403) when `target` gives anything `caller` does not hold; `what` names it."""
    problems = beyond(caller, target, caller_is_owner=caller_is_owner)
    if problems:
        raise Forbidden(f"You cannot {what}: it gives " + "; ".join(problems))
