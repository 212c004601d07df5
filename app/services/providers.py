"""Providers and provider groups. Scoping is not done here: the session already carries it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.db.models import Provider, ProviderGroup, ProviderGroupMember
from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.query import Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.query.plan import fetch_rows, row_columns
from app.schemas.provider import (
    ProviderCreate,
    ProviderGroupCreate,
    ProviderGroupUpdate,
    ProviderOut,
    ProviderUpdate,
)
from app.schemas.provider_uid import ProviderType
from app.security.principal import WorkspaceContext
from app.security.shaping import forget_provider_values


def _active() -> Any:
    return select(Provider).where(Provider.deleted_at.is_(None))


def _listed() -> Any:  # a multi-column select; Resource.base takes any ORM select
    return select(*row_columns(Provider, ProviderOut)).where(Provider.deleted_at.is_(None))


PROVIDERS = Resource(
    name="provider",
    base=_listed,
    fields={
        "id": Field(Provider.id, Uuid()),
        "provider_type": Field(Provider.provider_type, Enum(tuple(t.value for t in ProviderType))),
        "uid": Field(Provider.uid, Text()),
        "alias": Field(Provider.alias, Text(), nullable=True),
        "region": Field(Provider.region, Text(), nullable=True),
        "created_at": Field(Provider.created_at, Timestamp()),
        "updated_at": Field(Provider.updated_at, Timestamp()),
    },
)

PROVIDER_GROUPS = Resource(
    name="provider_group",
    base=lambda: select(ProviderGroup),
    fields={
        "id": Field(ProviderGroup.id, Uuid()),
        "name": Field(ProviderGroup.name, Text()),
        "created_at": Field(ProviderGroup.created_at, Timestamp()),
        "updated_at": Field(ProviderGroup.updated_at, Timestamp()),
    },
)


async def list_providers(ctx: WorkspaceContext, query: ListQuery) -> list[asyncpg.Record]:
    """Rows with ProviderOut's fields, through the compiled-query path: the same central scope
    as any session statement, compiled once per query shape."""
    return await fetch_rows(ctx.tx, query)


async def get_provider(ctx: WorkspaceContext, provider_id: uuid.UUID) -> Provider:
    provider = (
        await ctx.session.execute(_active().where(Provider.id == provider_id))
    ).scalar_one_or_none()
    if provider is None:
        raise NotFound("Provider not found")
    return provider


async def create_provider(ctx: WorkspaceContext, data: ProviderCreate) -> Provider:
    session = ctx.session
    provider = Provider(**data.model_dump())
    session.add(provider)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(
            f"A {data.provider_type.value} provider with uid '{data.uid}' already exists"
        ) from None
    forget_provider_values(ctx.workspace_id)
    await _within_grants(ctx, provider)
    return provider


async def _within_grants(ctx: WorkspaceContext, provider: Provider) -> None:
    """A provider the caller writes must stay among the rows they may see (row grants bind
    writes too): one outside them is refused, like a write RLS refuses."""
    if ctx.principal.rows[1]:
        visible = await ctx.session.execute(select(Provider.id).where(Provider.id == provider.id))
        if visible.first() is None:
            raise Forbidden("The provider would be outside the providers your role may see")


async def update_provider(
    ctx: WorkspaceContext, provider_id: uuid.UUID, data: ProviderUpdate
) -> Provider:
    provider = await get_provider(ctx, provider_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(provider, field, value)
    await ctx.session.flush()
    await _within_grants(ctx, provider)
    await ctx.session.refresh(provider)
    return provider


async def delete_provider(ctx: WorkspaceContext, provider_id: uuid.UUID) -> None:
    """Soft delete: the row stays (findings keep their provider), the uid becomes reusable."""
    provider = await get_provider(ctx, provider_id)
    provider.deleted_at = datetime.now(UTC)
    await ctx.session.execute(
        delete(ProviderGroupMember).where(ProviderGroupMember.provider_id == provider_id)
    )
    await ctx.session.flush()


# Provider groups


async def _provider_ids(
    ctx: WorkspaceContext, group_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    rows = await ctx.session.execute(
        select(ProviderGroupMember.provider_group_id, ProviderGroupMember.provider_id)
        .where(ProviderGroupMember.provider_group_id.in_(group_ids))
        .order_by(ProviderGroupMember.provider_id)
    )
    out: dict[uuid.UUID, list[uuid.UUID]] = {gid: [] for gid in group_ids}
    for group_id, provider_id in rows:
        out[group_id].append(provider_id)
    return out


def _group_out(group: ProviderGroup, provider_ids: list[uuid.UUID]) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "provider_ids": provider_ids,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
    }


async def list_groups(ctx: WorkspaceContext, query: ListQuery) -> list[dict[str, Any]]:
    groups = list((await ctx.session.execute(query.statement())).scalars())
    members = await _provider_ids(ctx, [g.id for g in groups])
    return [_group_out(g, members[g.id]) for g in groups]


async def _get_group(ctx: WorkspaceContext, group_id: uuid.UUID) -> ProviderGroup:
    group = (
        await ctx.session.execute(select(ProviderGroup).where(ProviderGroup.id == group_id))
    ).scalar_one_or_none()
    if group is None:
        raise NotFound("Provider group not found")
    return group


async def get_group(ctx: WorkspaceContext, group_id: uuid.UUID) -> dict[str, Any]:
    group = await _get_group(ctx, group_id)
    return _group_out(group, (await _provider_ids(ctx, [group.id]))[group.id])


async def _set_members(
    ctx: WorkspaceContext, group_id: uuid.UUID, provider_ids: list[uuid.UUID]
) -> None:
    session = ctx.session
    wanted = set(provider_ids)
    if wanted:
        found = set(
            (
                await session.execute(
                    select(Provider.id).where(
                        Provider.id.in_(wanted), Provider.deleted_at.is_(None)
                    )
                )
            ).scalars()
        )
        missing = wanted - found
        if missing:
            raise BadRequest("Unknown provider ids: " + ", ".join(sorted(str(m) for m in missing)))
    await session.execute(
        delete(ProviderGroupMember).where(ProviderGroupMember.provider_group_id == group_id)
    )
    session.add_all(
        ProviderGroupMember(provider_group_id=group_id, provider_id=pid) for pid in sorted(wanted)
    )
    await session.flush()


async def create_group(ctx: WorkspaceContext, data: ProviderGroupCreate) -> dict[str, Any]:
    session = ctx.session
    group = ProviderGroup(name=data.name)
    session.add(group)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"A provider group named '{data.name}' already exists") from None
    await _set_members(ctx, group.id, data.provider_ids)
    await session.refresh(group)
    return await get_group(ctx, group.id)


async def update_group(
    ctx: WorkspaceContext, group_id: uuid.UUID, data: ProviderGroupUpdate
) -> dict[str, Any]:
    session = ctx.session
    group = await _get_group(ctx, group_id)
    if data.name is not None:
        group.name = data.name
        group.updated_at = func.now()
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise Conflict(f"A provider group named '{data.name}' already exists") from None
    if data.provider_ids is not None:
        await _set_members(ctx, group_id, data.provider_ids)
    await session.refresh(group)
    return await get_group(ctx, group_id)


async def delete_group(ctx: WorkspaceContext, group_id: uuid.UUID) -> None:
    group = await _get_group(ctx, group_id)
    await ctx.session.delete(group)
    await ctx.session.flush()
