"""Workspaces: creation and the caller's list (through the narrow definer functions), deletion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.db.base import new_id
from app.db.models import Task, Workspace
from app.errors import Conflict, Forbidden
from app.jobs import DELETE_WORKSPACE
from app.schemas.audit import WorkspaceSettingsUpdate
from app.security.principal import UserContext, WorkspaceContext
from app.services import mfa, tasks


async def create_workspace(ctx: UserContext, slug: str, name: str) -> dict[str, Any]:
    """Create a workspace owned by the user in context (through the narrow definer path)."""
    session = ctx.session
    workspace_id = new_id()
    try:
        async with session.begin_nested():
            await session.execute(
                text("SELECT warden_create_workspace(:id, :slug, :name)"),
                {"id": workspace_id, "slug": slug, "name": name},
            )
    except IntegrityError:
        raise Conflict(f"The workspace slug '{slug}' is taken") from None
    rows = await list_workspaces(ctx)
    return next(r for r in rows if r["id"] == workspace_id)


async def list_workspaces(ctx: UserContext) -> list[dict[str, Any]]:
    result = await ctx.session.execute(
        text(
            "SELECT id, slug, name, role, custom_role_id, custom_role_name, inherits_from, "
            "grants, revokes, created_at FROM warden_user_workspaces()"
        )
    )
    return [dict(r) for r in result.mappings()]


async def request_deletion(ctx: WorkspaceContext) -> Task:
    """Hide the workspace at once (every route answers 404 from now on) and queue the job that
    removes its rows in batches and then the workspace itself (freeing the slug). Deleting
    everything takes seeing everything: a role limited to some provider groups, or by a row
    grant, cannot."""
    if not ctx.principal.unrestricted:
        raise Forbidden(
            "Deleting the workspace takes seeing all of it: the 'unlimited_visibility' "
            "permission and no row grant"
        )
    # The mark is the database's to set (once; nothing clears it), so the audit trail, which
    # may be purged only some time after it, cannot be erased from a live workspace.
    await ctx.session.execute(
        text("SELECT warden_mark_workspace_deleted(:id)"), {"id": ctx.workspace_id}
    )
    return await tasks.start(
        ctx,
        DELETE_WORKSPACE,
        resource_type="workspace",
        resource_id=ctx.workspace_id,
    )


async def get_settings(ctx: WorkspaceContext) -> Workspace:
    """The context's own workspace row (RLS shows no other)."""
    stmt = select(Workspace).where(Workspace.id == ctx.workspace_id)
    return (await ctx.session.execute(stmt)).scalar_one()


async def update_settings(ctx: WorkspaceContext, data: WorkspaceSettingsUpdate) -> Workspace:
    workspace = await get_settings(ctx)
    if (
        data.require_mfa
        and not workspace.require_mfa
        and not await mfa.is_on(ctx.session, ctx.user_id)
    ):
        raise Conflict("Turn on your own second factor before requiring one of every member")
    for field, value in data.model_dump(exclude_unset=True).items():
        if field in ("name", "require_mfa") and value is None:
            continue
        setattr(workspace, field, value)
    await ctx.session.flush()
    await ctx.session.refresh(workspace)
    return workspace
