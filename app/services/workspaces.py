"""Workspaces and members."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import new_id
from app.db.models import Membership, User
from app.errors import BadRequest, Conflict, NotFound
from app.security.permissions import BUILTIN_ROLES


async def create_workspace(session: AsyncSession, slug: str, name: str) -> dict[str, Any]:
    """Create a workspace owned by the user in context (through the narrow definer path)."""
    workspace_id = new_id()
    try:
        async with session.begin_nested():
            await session.execute(
                text("SELECT warden_create_workspace(:id, :slug, :name)"),
                {"id": workspace_id, "slug": slug, "name": name},
            )
    except IntegrityError:
        raise Conflict(f"The workspace slug '{slug}' is taken") from None
    rows = await list_workspaces(session)
    return next(r for r in rows if r["id"] == workspace_id)


async def list_workspaces(session: AsyncSession) -> list[dict[str, Any]]:
    result = await session.execute(
        text("SELECT id, slug, name, role, custom_role_id, created_at FROM warden_user_workspaces()")
    )
    return [dict(r) for r in result.mappings()]


def _member_select() -> Any:
    return select(
        Membership.user_id,
        User.email,
        User.name,
        Membership.role,
        Membership.custom_role_id,
        Membership.created_at,
    ).join(User, User.id == Membership.user_id)


async def list_members(session: AsyncSession) -> list[dict[str, Any]]:
    result = await session.execute(_member_select().order_by(User.email))
    return [dict(r) for r in result.mappings()]


async def add_member(session: AsyncSession, email: str, role: str) -> dict[str, Any]:
    if role not in BUILTIN_ROLES:
        raise BadRequest(f"Unknown role '{role}'; one of: {', '.join(BUILTIN_ROLES)}")
    user_id = (
        await session.execute(select(User.id).where(User.email == email.lower(), User.is_active))
    ).scalar_one_or_none()
    if user_id is None:
        raise NotFound("No user with this email; they must register first")
    session.add(Membership(user_id=user_id, role=role))
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("This user is already a member") from None
    return await get_member(session, user_id)


async def get_member(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    row = (
        await session.execute(_member_select().where(Membership.user_id == user_id))
    ).mappings().one_or_none()
    if row is None:
        raise NotFound()
    return dict(row)
