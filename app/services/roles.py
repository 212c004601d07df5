"""Custom roles, role assignment rules (no escalation), provider-group visibility per role."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import CustomRole, Membership, ProviderGroup, RoleProviderGroup
from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.query import Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.role import CustomRoleCreate, CustomRoleUpdate
from app.security.permissions import (
    BUILTIN_ROLES,
    UnknownPermission,
    effective_permissions,
    validate_keys,
)
from app.security.principal import WorkspacePrincipal

ASSIGNABLE_BASES = tuple(r for r in BUILTIN_ROLES if r != "platform_admin")

ROLES = Resource(
    name="role",
    base=lambda: select(CustomRole),
    fields={
        "id": Field(CustomRole.id, Uuid()),
        "name": Field(CustomRole.name, Text()),
        "inherits_from": Field(CustomRole.inherits_from, Enum(ASSIGNABLE_BASES)),
        "created_at": Field(CustomRole.created_at, Timestamp()),
        "updated_at": Field(CustomRole.updated_at, Timestamp()),
    },
    default_sort=("name",),
)


def _check_base(base: str) -> None:
    if base == "platform_admin":
        raise Forbidden("platform_admin is granted by the installation, not by a workspace")
    if base not in BUILTIN_ROLES:
        raise BadRequest(f"Unknown built-in role '{base}'; one of: {', '.join(ASSIGNABLE_BASES)}")


def _keys(keys: list[str]) -> list[str]:
    try:
        return validate_keys(keys)
    except UnknownPermission as exc:
        raise BadRequest(str(exc)) from None


async def _group_ids(session: AsyncSession, role_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.execute(
        select(RoleProviderGroup.provider_group_id)
        .where(RoleProviderGroup.role_key == str(role_id))
        .order_by(RoleProviderGroup.provider_group_id)
    )
    return list(rows.scalars())


async def _set_groups(
    session: AsyncSession, role_id: uuid.UUID, group_ids: list[uuid.UUID]
) -> None:
    wanted = set(group_ids)
    if wanted:
        found = set(
            (
                await session.execute(select(ProviderGroup.id).where(ProviderGroup.id.in_(wanted)))
            ).scalars()
        )
        if wanted - found:
            missing = ", ".join(sorted(str(m) for m in wanted - found))
            raise BadRequest(f"Unknown provider group ids: {missing}")
    await session.execute(
        delete(RoleProviderGroup).where(RoleProviderGroup.role_key == str(role_id))
    )
    session.add_all(
        RoleProviderGroup(role_key=str(role_id), provider_group_id=g) for g in sorted(wanted)
    )
    await session.flush()


async def role_out(session: AsyncSession, role: CustomRole) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "inherits_from": role.inherits_from,
        "grants": list(role.grants),
        "revokes": list(role.revokes),
        "provider_group_ids": await _group_ids(session, role.id),
        "permissions": sorted(
            effective_permissions(None, role.inherits_from, role.grants, role.revokes)
        ),
        "created_at": role.created_at,
        "updated_at": role.updated_at,
    }


async def list_roles(session: AsyncSession, query: ListQuery) -> list[dict[str, Any]]:
    roles = (await session.execute(query.statement())).scalars().all()
    return [await role_out(session, r) for r in roles]


async def get_role(session: AsyncSession, role_id: uuid.UUID) -> CustomRole:
    role = (
        await session.execute(select(CustomRole).where(CustomRole.id == role_id))
    ).scalar_one_or_none()
    if role is None:
        raise NotFound("Role not found")
    return role


async def _flush_named(session: AsyncSession, name: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"A role named '{name}' already exists") from None


async def create_role(session: AsyncSession, data: CustomRoleCreate) -> dict[str, Any]:
    _check_base(data.inherits_from)
    role = CustomRole(
        name=data.name,
        inherits_from=data.inherits_from,
        grants=_keys(data.grants),
        revokes=_keys(data.revokes),
    )
    session.add(role)
    await _flush_named(session, data.name)
    await _set_groups(session, role.id, data.provider_group_ids)
    await session.refresh(role)
    return await role_out(session, role)


async def update_role(
    session: AsyncSession, role_id: uuid.UUID, data: CustomRoleUpdate
) -> dict[str, Any]:
    role = await get_role(session, role_id)
    if data.inherits_from is not None:
        _check_base(data.inherits_from)
        role.inherits_from = data.inherits_from
    if data.grants is not None:
        role.grants = _keys(data.grants)
    if data.revokes is not None:
        role.revokes = _keys(data.revokes)
    if data.name is not None:
        role.name = data.name
    role.updated_at = func.now()
    await _flush_named(session, role.name)
    if data.provider_group_ids is not None:
        await _set_groups(session, role.id, data.provider_group_ids)
    await session.refresh(role)
    return await role_out(session, role)


async def delete_role(session: AsyncSession, role_id: uuid.UUID) -> None:
    role = await get_role(session, role_id)
    in_use = (
        await session.execute(
            select(func.count()).select_from(Membership).where(Membership.custom_role_id == role_id)
        )
    ).scalar_one()
    if in_use:
        raise Conflict(f"The role is held by {in_use} member(s); give them another role first")
    await session.execute(
        delete(RoleProviderGroup).where(RoleProviderGroup.role_key == str(role_id))
    )
    await session.delete(role)
    await session.flush()


async def resolve_assignment(
    session: AsyncSession, caller: WorkspacePrincipal, role: str
) -> tuple[str | None, uuid.UUID | None]:
    """Turn a requested role (built-in name or custom role id) into membership columns, refusing
    anything that would give more than the caller holds (no escalation)."""
    if role in BUILTIN_ROLES:
        _check_base(role)
        wanted = BUILTIN_ROLES[role]
        result: tuple[str | None, uuid.UUID | None] = (role, None)
        label = f"'{role}'"
    else:
        try:
            role_id = uuid.UUID(role)
        except ValueError:
            raise BadRequest(
                f"Unknown role '{role}'; a built-in role ({', '.join(ASSIGNABLE_BASES)}) "
                "or a custom role id"
            ) from None
        custom = await get_role(session, role_id)
        wanted = effective_permissions(None, custom.inherits_from, custom.grants, custom.revokes)
        result = (None, custom.id)
        label = f"custom role '{custom.name}'"
    beyond = wanted - caller.permissions
    if beyond:
        raise Forbidden(
            f"You cannot grant {label}: it holds permissions you do not "
            f"({', '.join(sorted(beyond))})"
        )
    return result
