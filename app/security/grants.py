"""Declarative row grants: per resource and role, a filter that may use the user's attributes.

Invariant: grants are declared here, next to each other, and applied centrally: the principal's
filters are computed once per request (`row_filters`) and added to every ORM statement on the
resource by `app.db.session` (`with_loader_criteria`). Grants of several roles combine with OR;
the filters inside one grant combine with AND. A role with no grant on a resource is not
restricted by this module (workspace scope and visibility still apply).

Attributes come from the user, overlaid by the membership's attributes in that workspace
(set by the workspace's admins with `PATCH /ws/{slug}/api/v1/members/{user_id}`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import orjson
from sqlalchemy import and_, false, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import AuditRecord, Provider

Attributes = Mapping[str, Any]
Filter = Callable[[Attributes], ColumnElement[bool] | None]


@dataclass(frozen=True)
class Grant:
    resource: type
    roles: frozenset[str]
    filters: tuple[Filter, ...]
    description: str

    def criterion(self, attributes: Attributes) -> ColumnElement[bool] | None:
        """AND of this grant's filters; None when no filter applies (the grant is unrestricted)."""
        parts = [c for c in (f(attributes) for f in self.filters) if c is not None]
        return and_(*parts) if parts else None


def _attribute_in(column: Any, name: str) -> Filter:
    """`column` is one of the user's `name` attribute values, when the user has that attribute."""

    def build(attributes: Attributes) -> ColumnElement[bool] | None:
        if name not in attributes:
            return None
        value = attributes[name]
        values = value if isinstance(value, list) else [value]
        return column.in_([str(v) for v in values]) if values else false()

    return build


GRANTS: tuple[Grant, ...] = (
    Grant(
        resource=Provider,
        roles=frozenset({"viewer", "approver"}),
        filters=(_attribute_in(Provider.region, "region"),),
        description=(
            "viewers and approvers with a `region` attribute see only that region's providers"
        ),
    ),
)


def row_filters(
    roles: Iterable[str], attributes: Attributes, *, all_providers: bool = True
) -> Mapping[type, ColumnElement[bool]]:
    """The row criteria for a principal holding `roles`: OR over the matching grants per resource.

    The audit log follows the providers: a principal who may not see every provider (a row
    grant, or provider-group visibility) does not see records about the providers it cannot see
    either (their bodies and states carry the provider's fields).

    A pure function of the grants, the roles, the attribute values and the visibility, which the
    caller reads fresh on every request; the built expressions (immutable) are memoized on
    exactly those, so a changed role or attribute is a different key, never a stale answer."""
    return principal_filters(roles, attributes, all_providers=all_providers)[1]


def principal_filters(
    roles: Iterable[str], attributes: Attributes, *, all_providers: bool = True
) -> tuple[tuple[Any, ...], Mapping[type, ColumnElement[bool]]]:
    """`row_filters`, with the key naming it: exactly what it depends on (equal keys, equal
    criteria), for a statement compiled once per key (`app.query.plan`)."""
    attributes_json = orjson.dumps(
        attributes, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
    ).decode()
    key = (GRANTS, frozenset(roles), attributes_json, all_providers)
    return key, _row_filters(*key)


@lru_cache(maxsize=1024)
def _row_filters(
    grants: tuple[Grant, ...], role_set: frozenset[str], attributes_json: str, all_providers: bool
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
    if Provider in out or not all_providers:
        visible = select(Provider.id)
        if Provider in out:
            visible = visible.where(out[Provider])  # visibility itself: RLS on provider
        out[AuditRecord] = or_(
            AuditRecord.resource_type.is_distinct_from("provider"),
            AuditRecord.resource_id.is_(None),
            AuditRecord.resource_id.in_(visible),
        )
    return MappingProxyType(out)  # shared between requests: read-only
