"""Custom roles, provider-group visibility per role, and what a role or member gives (for the
no-escalation rule: every create, edit, delete and assignment is checked against the caller)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.db.models import CustomRole, Membership, ProviderGroup, RoleProviderGroup
from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.query import Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.role import CustomRoleCreate, CustomRoleUpdate
from app.security.escalation import Access, ensure_within
from app.security.permissions import BUILTIN_ROLES, RoleSpec, UnknownPermission, validate_keys
from app.security.principal import WorkspaceContext
from app.services.users import member_identities

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


def _spec(role: CustomRole) -> RoleSpec:
    return RoleSpec(None, role.name, role.inherits_from, tuple(role.grants), tuple(role.revokes))


async def _group_ids(ctx: WorkspaceContext, role_key: str) -> list[uuid.UUID]:
    rows = await ctx.session.execute(
        select(RoleProviderGroup.provider_group_id)
        .where(RoleProviderGroup.role_key == role_key)
        .order_by(RoleProviderGroup.provider_group_id)
    )
    return list(rows.scalars())


async def caller_access(ctx: WorkspaceContext) -> Access:
    """What the caller holds, to compare what they give with."""
    p = ctx.principal
    key = p.role or str(p.custom_role_id)
    return Access(p.spec, frozenset(await _group_ids(ctx, key)), p.attributes)


async def ensure_caller_may_give(ctx: WorkspaceContext, target: Access, what: str) -> None:
    """The no-escalation rule, for anything this service or the members' gives."""
    caller = await caller_access(ctx)
    ensure_within(caller, target, what, caller_is_owner=ctx.principal.is_owner)


async def role_access(
    ctx: WorkspaceContext,
    builtin: str | None,
    custom: CustomRole | None,
    attributes: Mapping[str, Any] | None,
) -> Access:
    """What holding a built-in role or a custom role gives (a member with `attributes`)."""
    if custom is not None:
        spec = _spec(custom)
        groups = frozenset(await _group_ids(ctx, str(custom.id)))
    else:
        spec = RoleSpec(builtin)
        groups = frozenset(await _group_ids(ctx, str(builtin)))
    return Access(spec, groups, attributes)


async def _set_groups(
    ctx: WorkspaceContext, role_id: uuid.UUID, group_ids: Iterable[uuid.UUID]
) -> None:
    session = ctx.session
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


async def role_out(ctx: WorkspaceContext, role: CustomRole) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "inherits_from": role.inherits_from,
        "grants": list(role.grants),
        "revokes": list(role.revokes),
        "provider_group_ids": await _group_ids(ctx, str(role.id)),
        "permissions": sorted(_spec(role).permissions),
        "created_at": role.created_at,
        "updated_at": role.updated_at,
    }


async def list_roles(ctx: WorkspaceContext, query: ListQuery) -> list[dict[str, Any]]:
    roles = (await ctx.session.execute(query.statement())).scalars().all()
    return [await role_out(ctx, r) for r in roles]


async def get_role(
    ctx: WorkspaceContext, role_id: uuid.UUID, *, lock: bool = False, share: bool = False
) -> CustomRole:
    """The custom role; `lock` takes it for an edit, `share` keeps it from being edited until
    this transaction ends (an assignment checks the role as it will stay)."""
    stmt = select(CustomRole).where(CustomRole.id == role_id)
    if lock or share:
        stmt = stmt.with_for_update(read=share and not lock).execution_options(
            populate_existing=True
        )
    role = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if role is None:
        raise NotFound("Role not found")
    return role


async def _flush_named(ctx: WorkspaceContext, name: str) -> None:
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        raise Conflict(f"A role named '{name}' already exists") from None


async def create_role(ctx: WorkspaceContext, data: CustomRoleCreate) -> dict[str, Any]:
    _check_base(data.inherits_from)
    role = CustomRole(
        name=data.name,
        inherits_from=data.inherits_from,
        grants=_keys(data.grants),
        revokes=_keys(data.revokes),
    )
    target = Access(_spec(role), frozenset(data.provider_group_ids))
    await ensure_caller_may_give(ctx, target, f"create the role '{data.name}'")
    ctx.session.add(role)
    await _flush_named(ctx, data.name)
    await _set_groups(ctx, role.id, data.provider_group_ids)
    await ctx.session.refresh(role)
    return await role_out(ctx, role)


async def _holders(ctx: WorkspaceContext, role_id: uuid.UUID) -> list[dict[str, Any]]:
    """Members holding the role, with their effective attributes (the user's, overlaid by the
    membership's)."""
    rows = (
        await ctx.session.execute(
            select(Membership.user_id, Membership.attributes).where(
                Membership.custom_role_id == role_id
            )
        )
    ).all()
    users = {
        u.user_id: u.attributes for u in await member_identities(ctx, [r.user_id for r in rows])
    }
    return [
        {
            "user_id": r.user_id,
            "attributes": {**(users.get(r.user_id) or {}), **(r.attributes or {})},
        }
        for r in rows
    ]


async def update_role(
    ctx: WorkspaceContext, role_id: uuid.UUID, data: CustomRoleUpdate
) -> dict[str, Any]:
    """Nobody edits a role that gives more than they hold (the role they hold included), nor
    into one that would, for any of its holders."""
    role = await get_role(ctx, role_id, lock=True)
    label = f"change the role '{role.name}'"
    await ensure_caller_may_give(ctx, await role_access(ctx, None, role, None), label)
    if data.inherits_from is not None:
        _check_base(data.inherits_from)
    spec = RoleSpec(
        None,
        data.name if data.name is not None else role.name,
        data.inherits_from if data.inherits_from is not None else role.inherits_from,
        tuple(_keys(data.grants) if data.grants is not None else role.grants),
        tuple(_keys(data.revokes) if data.revokes is not None else role.revokes),
    )
    groups = (
        frozenset(data.provider_group_ids)
        if data.provider_group_ids is not None
        else frozenset(await _group_ids(ctx, str(role.id)))
    )
    await ensure_caller_may_give(ctx, Access(spec, groups), label)
    for holder in await _holders(ctx, role.id):
        held = Access(spec, groups, holder["attributes"])
        await ensure_caller_may_give(ctx, held, f"{label} for member {holder['user_id']}")
    role.name, role.inherits_from = spec.custom_name or role.name, spec.base
    role.grants, role.revokes = list(spec.grants), list(spec.revokes)
    role.updated_at = func.now()
    await _flush_named(ctx, role.name)
    if data.provider_group_ids is not None:
        await _set_groups(ctx, role.id, data.provider_group_ids)
    await ctx.session.refresh(role)
    return await role_out(ctx, role)


async def delete_role(ctx: WorkspaceContext, role_id: uuid.UUID) -> None:
    session = ctx.session
    role = await get_role(ctx, role_id, lock=True)
    await ensure_caller_may_give(
        ctx, await role_access(ctx, None, role, None), f"delete the role '{role.name}'"
    )
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


async def resolve_role(
    ctx: WorkspaceContext, role: str
) -> tuple[str | None, uuid.UUID | None, CustomRole | None]:
    """A requested role (built-in name or custom role id) as membership columns, and the custom
    role itself, share-locked: a concurrent edit of the role waits for this assignment (and
    then sees its holder), or this assignment waits for the edit (and checks the role as
    edited)."""
    if role in BUILTIN_ROLES:
        _check_base(role)
        return role, None, None
    try:
        role_id = uuid.UUID(role)
    except ValueError:
        raise BadRequest(
            f"Unknown role '{role}'; a built-in role ({', '.join(ASSIGNABLE_BASES)}) "
            "or a custom role id"
        ) from None
    custom = await get_role(ctx, role_id, share=True)
    return None, custom.id, custom
