"""Who among a workspace's members holds a permission, and whether one member would see a row:
the questions behind notifying approvers and accepting an assignee. Answered with the same
resolver, the same principal builder and the same row criteria a member's own requests get."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, select

from app.db.base import ScopedEntity
from app.db.models import CustomRole, Membership
from app.db.session import scope_options
from app.security.permissions import RoleSpec
from app.security.principal import MEMBER_CONTEXT_SQL, WorkspaceContext, principal_from_row


async def holders(ctx: WorkspaceContext, permissions: Iterable[str]) -> list[uuid.UUID]:
    """Members whose role (built-in or custom) holds any of `permissions`."""
    wanted = frozenset(permissions)
    rows = await ctx.session.execute(
        select(
            Membership.user_id,
            Membership.role,
            CustomRole.name,
            CustomRole.inherits_from,
            CustomRole.grants,
            CustomRole.revokes,
        )
        .outerjoin(
            CustomRole,
            and_(
                CustomRole.workspace_id == Membership.workspace_id,
                CustomRole.id == Membership.custom_role_id,
            ),
        )
        .order_by(Membership.user_id)
    )
    return [
        r.user_id
        for r in rows
        if RoleSpec(
            r.role, r.name, r.inherits_from, tuple(r.grants or ()), tuple(r.revokes or ())
        ).permissions
        & wanted
    ]


async def member_principal(ctx: WorkspaceContext, user_id: uuid.UUID) -> Any:
    """Member `user_id` of the workspace in context, as a principal (None: not a member).
    Read before the transaction writes: on Citus a definer function cannot read a shard the
    request's own role has modified."""
    row = (await ctx.tx.fetch(MEMBER_CONTEXT_SQL, user_id, ctx.workspace_id)) or [None]
    if row[0] is None or row[0]["workspace_deleted"]:
        return None
    return principal_from_row(user_id, ctx.workspace_id, row[0])


async def member_may_see(
    ctx: WorkspaceContext,
    member: Any,
    permission: str,
    entity: type[ScopedEntity],
    row_id: uuid.UUID,
) -> bool:
    """Whether `member` (from `member_principal`) holds `permission` and would see row `row_id`
    of `entity` (provider visibility and row grants included). Asked by a caller who sees that
    row: the caller's own criteria apply too, so the answer is the member's view of it."""
    if member is None or not member.can(permission):
        return False
    info = {
        "workspace_id": ctx.workspace_id,
        "visibility": member.visibility,
        "row_filters": member.rows[1],
    }
    stmt = select(entity.id).where(entity.id == row_id).options(*scope_options(info))
    return (await ctx.session.execute(stmt)).first() is not None
