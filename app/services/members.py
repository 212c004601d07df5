"""Members: list, add, change role or attributes, remove — never beyond the caller's own access,
never leaving a workspace ownerless."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from app.db.models import CustomRole, Membership
from app.errors import Conflict, NotFound
from app.query import DistinctQuery, Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.role import MemberUpdate
from app.security.escalation import Access
from app.security.permissions import ROLE_NAMES
from app.security.principal import WorkspaceContext
from app.services.roles import ensure_caller_may_give, resolve_role, role_access
from app.services.users import MEMBER_USER, member_identities, member_user_params, user_by_email


def _member_select() -> Any:
    return (
        select(
            Membership.user_id,
            MEMBER_USER.c.email,
            MEMBER_USER.c.name,
            Membership.role,
            Membership.custom_role_id,
            Membership.attributes,
            Membership.created_at,
        )
        .select_from(Membership)
        .join(MEMBER_USER, MEMBER_USER.c.user_id == Membership.user_id)
    )


MEMBERS = Resource(
    name="member",
    base=_member_select,
    fields={
        "user_id": Field(Membership.user_id, Uuid()),
        "email": Field(MEMBER_USER.c.email, Text()),
        "name": Field(MEMBER_USER.c.name, Text()),
        "role": Field(Membership.role, Enum(ROLE_NAMES), nullable=True),
        "custom_role_id": Field(Membership.custom_role_id, Uuid(), nullable=True),
        "created_at": Field(Membership.created_at, Timestamp()),
    },
    key="user_id",
    default_sort=("name",),
)


async def list_members(ctx: WorkspaceContext, query: ListQuery) -> list[dict[str, Any]]:
    result = await ctx.session.execute(query.statement(), await member_user_params(ctx))
    return [dict(r) for r in result.mappings()]


async def distinct_members(ctx: WorkspaceContext, query: DistinctQuery) -> dict[str, Any]:
    """`app.query.distinct` for members: the statement joins the members' identity."""
    result = await ctx.session.execute(query.statement(), await member_user_params(ctx))
    return query.page(list(result.scalars()))


async def get_member(ctx: WorkspaceContext, user_id: uuid.UUID) -> dict[str, Any]:
    stmt = _member_select().where(Membership.user_id == user_id)
    row = (await ctx.session.execute(stmt, await member_user_params(ctx))).mappings().one_or_none()
    if row is None:
        raise NotFound("Member not found")
    return dict(row)


async def add_member(ctx: WorkspaceContext, email: str, role: str) -> dict[str, Any]:
    session = ctx.session
    builtin, custom_id, custom = await resolve_role(ctx, role)
    user = await user_by_email(ctx, email)
    target = await role_access(ctx, builtin, custom, user.attributes if user else {})
    await ensure_caller_may_give(ctx, target, f"give the role '{custom.name if custom else role}'")
    if user is None:
        raise NotFound("No user with this email; they must register first")
    member = Membership(user_id=user.user_id, role=builtin, custom_role_id=custom_id)
    session.add(member)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("This user is already a member") from None
    await session.refresh(member)
    # From what this transaction knows (on Citus a definer function's own connection would not
    # see the new membership yet).
    return _member_out(member, email.lower(), user.name)


async def _lock(ctx: WorkspaceContext, user_id: uuid.UUID) -> Membership:
    """Lock, in one statement and in one order (by user id), the caller's, the target's and
    every owner's membership rows: two concurrent changes of owners (two owners removing each
    other) queue instead of deadlocking, and the second sees the first's result. The caller's
    membership must still be what the request was authorized with."""
    me = ctx.principal
    rows = (
        (
            await ctx.session.execute(
                select(Membership)
                .where(
                    or_(
                        Membership.user_id.in_([me.user_id, user_id]),
                        Membership.role == "owner",
                    )
                )
                .order_by(Membership.user_id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    by_id = {m.user_id: m for m in rows}
    mine = by_id.get(me.user_id)
    if mine is None or (mine.role, mine.custom_role_id) != (me.role, me.custom_role_id):
        raise Conflict("Your own membership changed while this request ran; try again")
    member = by_id.get(user_id)
    if member is None:
        raise NotFound("Member not found")
    return member


async def _owners_besides(ctx: WorkspaceContext, user_id: uuid.UUID) -> int:
    """Owners other than `user_id` (their rows are locked by `_lock`)."""
    stmt = select(func.count()).where(Membership.role == "owner", Membership.user_id != user_id)
    return int((await ctx.session.execute(stmt)).scalar_one())


async def _identity(ctx: WorkspaceContext, user_id: uuid.UUID) -> Any:
    """The member's user (email, name, attributes), read before this transaction locks or
    writes: on Citus a definer function cannot read a shard the request's own role has
    modified."""
    rows = await member_identities(ctx, [user_id])
    return rows[0] if rows else None


def _member_out(member: Membership, email: str | None, name: str | None) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "email": email,
        "name": name,
        "role": member.role,
        "custom_role_id": member.custom_role_id,
        "attributes": member.attributes,
        "created_at": member.created_at,
    }


async def _member_access(
    ctx: WorkspaceContext,
    builtin: str | None,
    custom_id: uuid.UUID | None,
    attributes: dict[str, Any],
) -> Access:
    custom = None
    if custom_id is not None:
        stmt = select(CustomRole).where(CustomRole.id == custom_id)
        custom = (await ctx.session.execute(stmt)).scalar_one()
    return await role_access(ctx, builtin, custom, attributes)


async def update_member(
    ctx: WorkspaceContext, user_id: uuid.UUID, data: MemberUpdate
) -> dict[str, Any]:
    """Nobody changes a member whose access exceeds their own, or gives a member more than
    they hold (the caller included); the last owner keeps the role."""
    identity = await _identity(ctx, user_id)
    member = await _lock(ctx, user_id)
    own = dict(identity.attributes or {}) if identity else {}
    attributes = {**own, **(member.attributes or {})}
    before = await _member_access(ctx, member.role, member.custom_role_id, attributes)
    await ensure_caller_may_give(ctx, before, "change this member")
    builtin, custom_id = member.role, member.custom_role_id
    if data.role is not None:
        builtin, custom_id, _ = await resolve_role(ctx, data.role)
    if data.attributes is not None:
        attributes = {**own, **data.attributes}
    after = await _member_access(ctx, builtin, custom_id, attributes)
    await ensure_caller_may_give(ctx, after, "give this member that role or those attributes")
    if member.role == "owner" and builtin != "owner" and not await _owners_besides(ctx, user_id):
        raise Conflict("A workspace must keep at least one owner")
    member.role, member.custom_role_id = builtin, custom_id
    if data.attributes is not None:
        member.attributes = data.attributes
    member.updated_at = func.now()
    await ctx.session.flush()
    await ctx.session.refresh(member)
    return _member_out(member, *((identity.email, identity.name) if identity else (None, None)))


async def remove_member(ctx: WorkspaceContext, user_id: uuid.UUID) -> None:
    identity = await _identity(ctx, user_id)
    member = await _lock(ctx, user_id)
    attributes = {**(identity.attributes or {} if identity else {}), **(member.attributes or {})}
    current = await _member_access(ctx, member.role, member.custom_role_id, attributes)
    await ensure_caller_may_give(ctx, current, "remove this member")
    if member.role == "owner" and not await _owners_besides(ctx, user_id):
        raise Conflict("A workspace must keep at least one owner")
    await ctx.session.delete(member)
    await ctx.session.flush()
