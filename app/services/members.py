"""Members: list, add, change role or attributes, remove — never leaving a workspace ownerless."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Membership, User
from app.errors import Conflict, Forbidden, NotFound
from app.query import Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.role import MemberUpdate
from app.security.permissions import ROLE_NAMES
from app.security.principal import WorkspacePrincipal
from app.services.roles import resolve_assignment


def _member_select() -> Any:
    return (
        select(
            Membership.user_id,
            User.email,
            User.name,
            Membership.role,
            Membership.custom_role_id,
            Membership.attributes,
            Membership.created_at,
        )
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
    )


MEMBERS = Resource(
    name="member",
    base=_member_select,
    fields={
        "user_id": Field(Membership.user_id, Uuid()),
        "email": Field(User.email, Text()),
        "name": Field(User.name, Text()),
        "role": Field(Membership.role, Enum(ROLE_NAMES), nullable=True),
        "custom_role_id": Field(Membership.custom_role_id, Uuid(), nullable=True),
        "created_at": Field(Membership.created_at, Timestamp()),
    },
    key="user_id",
    default_sort=("name",),
)


async def list_members(session: AsyncSession, query: ListQuery) -> list[dict[str, Any]]:
    result = await session.execute(query.statement())
    return [dict(r) for r in result.mappings()]


async def get_member(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    row = (
        (await session.execute(_member_select().where(Membership.user_id == user_id)))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFound("Member not found")
    return dict(row)


async def add_member(
    session: AsyncSession, caller: WorkspacePrincipal, email: str, role: str
) -> dict[str, Any]:
    builtin, custom_id = await resolve_assignment(session, caller, role)
    user_id = (
        await session.execute(select(User.id).where(User.email == email.lower(), User.is_active))
    ).scalar_one_or_none()
    if user_id is None:
        raise NotFound("No user with this email; they must register first")
    session.add(Membership(user_id=user_id, role=builtin, custom_role_id=custom_id))
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("This user is already a member") from None
    return await get_member(session, user_id)


async def _locked(session: AsyncSession, user_id: uuid.UUID) -> Membership:
    member = (
        await session.execute(
            select(Membership).where(Membership.user_id == user_id).with_for_update()
        )
    ).scalar_one_or_none()
    if member is None:
        raise NotFound("Member not found")
    return member


async def _other_owners(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Owners other than `user_id`, with every owner row locked so two concurrent demotions
    cannot both see the other owner and leave none."""
    owners = (
        (
            await session.execute(
                select(Membership.user_id).where(Membership.role == "owner").with_for_update()
            )
        )
        .scalars()
        .all()
    )
    return sum(1 for o in owners if o != user_id)


async def _guard_owner(
    session: AsyncSession, caller: WorkspacePrincipal, member: Membership, *, leaving: bool
) -> None:
    """Only owners touch owners; the last owner can be neither demoted nor removed."""
    if member.role != "owner":
        return
    if caller.role != "owner":
        raise Forbidden("Only an owner can change or remove an owner")
    if leaving and await _other_owners(session, member.user_id) == 0:
        raise Conflict("A workspace must keep at least one owner")


async def update_member(
    session: AsyncSession, caller: WorkspacePrincipal, user_id: uuid.UUID, data: MemberUpdate
) -> dict[str, Any]:
    member = await _locked(session, user_id)
    builtin, custom_id = member.role, member.custom_role_id
    if data.role is not None:
        builtin, custom_id = await resolve_assignment(session, caller, data.role)
    await _guard_owner(session, caller, member, leaving=builtin != "owner")
    member.role, member.custom_role_id = builtin, custom_id
    if data.attributes is not None:
        member.attributes = data.attributes
    member.updated_at = func.now()
    await session.flush()
    return await get_member(session, user_id)


async def remove_member(
    session: AsyncSession, caller: WorkspacePrincipal, user_id: uuid.UUID
) -> None:
    member = await _locked(session, user_id)
    await _guard_owner(session, caller, member, leaving=True)
    await session.delete(member)
    await session.flush()
