"""IdP group mappings: the members of an IdP group get a role in this workspace when they sign
in. Making or removing one gives or takes that role, so it obeys the no-escalation rule."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db.models import IdpGroupMapping
from app.errors import Conflict, NotFound
from app.query import Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.identity import IdpGroupCreate
from app.security.permissions import ROLE_NAMES
from app.security.principal import WorkspaceContext
from app.services.roles import ensure_caller_may_give, get_role, resolve_role, role_access


def _select() -> Any:
    m = IdpGroupMapping
    return select(m.id, m.group_name.label("group"), m.role, m.custom_role_id, m.created_at)


IDP_GROUPS = Resource(
    name="idp_group",
    base=_select,
    fields={
        "id": Field(IdpGroupMapping.id, Uuid()),
        "group": Field(IdpGroupMapping.group_name, Text()),
        "role": Field(IdpGroupMapping.role, Enum(ROLE_NAMES), nullable=True),
        "custom_role_id": Field(IdpGroupMapping.custom_role_id, Uuid(), nullable=True),
        "created_at": Field(IdpGroupMapping.created_at, Timestamp()),
    },
    default_sort=("group",),
)


async def list_mappings(ctx: WorkspaceContext, query: ListQuery) -> list[dict[str, Any]]:
    return [dict(r) for r in (await ctx.session.execute(query.statement())).mappings()]


async def get_mapping(ctx: WorkspaceContext, mapping_id: uuid.UUID) -> dict[str, Any]:
    row = (
        (await ctx.session.execute(_select().where(IdpGroupMapping.id == mapping_id)))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFound("IdP group mapping not found")
    return dict(row)


async def create_mapping(ctx: WorkspaceContext, data: IdpGroupCreate) -> dict[str, Any]:
    builtin, custom_id, custom = await resolve_role(ctx, data.role)
    target = await role_access(ctx, builtin, custom, None)
    label = custom.name if custom is not None else data.role
    await ensure_caller_may_give(ctx, target, f"map group '{data.group}' to the role '{label}'")
    mapping = IdpGroupMapping(group_name=data.group, role=builtin, custom_role_id=custom_id)
    ctx.session.add(mapping)
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        raise Conflict(f"The group '{data.group}' is already mapped") from None
    return await get_mapping(ctx, mapping.id)


async def delete_mapping(ctx: WorkspaceContext, mapping_id: uuid.UUID) -> None:
    """Its members lose the role at their next sign-in; so only someone who could give the
    role may remove the mapping."""
    stmt = select(IdpGroupMapping).where(IdpGroupMapping.id == mapping_id).with_for_update()
    mapping = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if mapping is None:
        raise NotFound("IdP group mapping not found")
    custom = (
        await get_role(ctx, mapping.custom_role_id) if mapping.custom_role_id is not None else None
    )
    target = await role_access(ctx, mapping.role, custom, None)
    await ensure_caller_may_give(ctx, target, f"remove the mapping of group '{mapping.group_name}'")
    await ctx.session.delete(mapping)
    await ctx.session.flush()
