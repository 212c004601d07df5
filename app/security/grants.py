"""Declarative row grants, and the row criteria every table derives from them.

A grant is declared per resource and role: a filter that may use the member's attributes
(e.g. viewers with a `region` attribute see only that region's providers). Grants of several
roles combine with OR; the filters inside one grant with AND. A role with no grant on a
resource is not restricted by grants there.

Invariant: what a grant restricts is restricted everywhere it shows. From the tables'
declared provider links (`__provider__`), `row_scope` derives a criterion for every table whose
rows belong to a provider the member may not see (a finding of a hidden provider is hidden, and
so is its scan, its task, its stored upload), and for the audit log (a record about a hidden
resource is hidden). The criteria are applied centrally to every ORM statement, compiled list
queries included; workspace scope and provider-group visibility are added there too.

Attributes come from the user, overlaid by the membership's attributes in that workspace (set
by the workspace's admins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import orjson
from sqlalchemy import and_, false, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.db.base import WorkspaceScoped, entity_for_table, scoped_entities
from app.db.models import Provider

Attributes = Mapping[str, Any]


@dataclass(frozen=True)
class AttributeIn:
    """`column` is one of the member's `attribute` values, when the member has that attribute
    (a member without it is not restricted by this filter)."""

    column: str
    attribute: str

    def values(self, attributes: Attributes) -> frozenset[str] | None:
        """The allowed values, or None when the filter does not apply."""
        if self.attribute not in attributes:
            return None
        value = attributes[self.attribute]
        return frozenset(str(v) for v in (value if isinstance(value, list) else [value]))

    def criterion(self, entity: type, attributes: Attributes) -> ColumnElement[bool] | None:
        allowed = self.values(attributes)
        if allowed is None:
            return None
        column = getattr(entity, self.column)
        return column.in_(sorted(allowed)) if allowed else false()


@dataclass(frozen=True)
class Grant:
    resource: type
    roles: frozenset[str]
    filters: tuple[AttributeIn, ...]
    description: str

    def criterion(self, attributes: Attributes) -> ColumnElement[bool] | None:
        """AND of this grant's filters; None when no filter applies (the grant is unrestricted)."""
        parts = [
            c
            for c in (f.criterion(self.resource, attributes) for f in self.filters)
            if c is not None
        ]
        return and_(*parts) if parts else None


GRANTS: tuple[Grant, ...] = (
    Grant(
        resource=Provider,
        roles=frozenset({"viewer", "approver"}),
        filters=(AttributeIn("region", "region"),),
        description=(
            "viewers and approvers with a `region` attribute see only that region's providers"
        ),
    ),
)


def row_scope(
    roles: Iterable[str], attributes: Attributes, *, unlimited: bool
) -> tuple[tuple[Any, ...], Mapping[type, ColumnElement[bool]]]:
    """The row criteria for a member holding `roles` with `attributes` (and, unless
    `unlimited`, a limited provider visibility), with the key naming them: exactly what they
    depend on (equal keys, equal criteria), for statements compiled once per key.

    A pure function of the grants, the roles, the attribute values and the visibility, which the
    caller reads fresh on every request; the built expressions (immutable) are memoized on
    exactly those, so a changed role or attribute is a different key, never a stale answer."""
    attributes_json = orjson.dumps(
        dict(attributes), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
    ).decode()
    key = (GRANTS, frozenset(roles), attributes_json, unlimited)
    return key, _row_scope(*key)


@lru_cache(maxsize=1024)
def _row_scope(
    grants: tuple[Grant, ...], role_set: frozenset[str], attributes_json: str, unlimited: bool
) -> Mapping[type, ColumnElement[bool]]:
    attributes = orjson.loads(attributes_json)
    by_resource: dict[type, list[ColumnElement[bool] | None]] = {}
    for grant in grants:
        if grant.roles & role_set:
            by_resource.setdefault(grant.resource, []).append(grant.criterion(attributes))
    out: dict[type, ColumnElement[bool]] = {}
    for resource, criteria in by_resource.items():
        if any(c is None for c in criteria):
            continue  # one unrestricted grant opens the resource
        out[resource] = or_(*[c for c in criteria if c is not None])
    return MappingProxyType(_derived(out, unlimited))


def _derived(
    own: dict[type, ColumnElement[bool]], unlimited: bool
) -> dict[type, ColumnElement[bool]]:
    """Add the criteria that follow from the declared provider links: a row of a hidden
    provider (or of a hidden parent row) is hidden, and so are audit records about it.

    The derived criteria are subqueries over the linked table (`id IN (SELECT …)`); the
    central filter adds that table's own criteria inside them, so they chain."""
    out = dict(own)
    limited: set[type] = set(own)  # tables some member may see only part of
    if not unlimited:
        limited |= {c for c in scoped_entities() if c.__provider__.direct}
    for entity in scoped_entities():
        link = entity.__provider__
        if entity in own or entity is Provider:
            continue
        if link.direct and Provider in own:
            column = getattr(entity, link.column)  # type: ignore[arg-type]
            criterion = column.in_(select(Provider.id))
            out[entity] = or_(column.is_(None), criterion) if link.optional else criterion
            limited.add(entity)
    changed = True
    while changed:  # parents first, whatever the declaration order
        changed = False
        for entity in scoped_entities():
            link = entity.__provider__
            if link.parent is None or entity in out:
                continue
            parent = entity_for_table(link.parent)
            if parent in limited:
                column = getattr(entity, link.column)  # type: ignore[arg-type]
                out[entity] = column.in_(select(parent.id))  # type: ignore[attr-defined]
                limited.add(entity)
                changed = True
    for entity in scoped_entities():
        if entity.__provider__.by_reference and limited:
            out[entity] = _about_visible(entity, limited)
    return out


def _about_visible(entity: type[WorkspaceScoped], limited: set[Any]) -> ColumnElement[bool]:
    """Records about a resource of a partly visible table only when that row is visible."""
    kind = entity.resource_type  # type: ignore[attr-defined]
    ident = entity.resource_id  # type: ignore[attr-defined]
    terms = [
        or_(kind.is_distinct_from(t.__resource__), ident.is_(None), ident.in_(select(t.id)))  # type: ignore[attr-defined]
        for t in sorted(limited, key=lambda c: c.__tablename__)  # type: ignore[attr-defined]
        if hasattr(t, "id") and not t.__provider__.by_reference
    ]
    return and_(*terms)
