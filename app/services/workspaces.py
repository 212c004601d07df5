"""Workspaces: creation and the caller's list (through the narrow definer functions), deletion."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import new_id
from app.db.models import Task, Workspace
from app.errors import Conflict, Forbidden
from app.jobs import DELETE_WORKSPACE
from app.schemas.audit import WorkspaceSettingsUpdate
from app.security.principal import WorkspacePrincipal
from app.services import tasks


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
        text(
            "SELECT id, slug, name, role, custom_role_id, custom_role_name, inherits_from, "
            "grants, revokes, created_at FROM warden_user_workspaces()"
        )
    )
    return [dict(r) for r in result.mappings()]


async def request_deletion(session: AsyncSession, principal: WorkspacePrincipal) -> Task:
    """Hide the workspace at once (every route answers 404 from now on) and queue the job that
    removes its rows in batches and then the workspace itself (freeing the slug). Deleting
    everything takes seeing everything: a role limited to some provider groups cannot."""
    if not principal.can("unlimited_visibility"):
        raise Forbidden("Deleting the workspace also needs the 'unlimited_visibility' permission")
    workspace = (
        await session.execute(
            select(Workspace).where(Workspace.id == principal.workspace_id).with_for_update()
        )
    ).scalar_one()
    workspace.deleted_at = datetime.now(UTC)
    return await tasks.start(
        session,
        DELETE_WORKSPACE,
        user_id=principal.user_id,
        resource_type="workspace",
        resource_id=workspace.id,
    )


async def get_settings(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace:
    """The context's own workspace row (RLS shows no other)."""
    stmt = select(Workspace).where(Workspace.id == workspace_id)
    return (await session.execute(stmt)).scalar_one()


async def update_settings(
    session: AsyncSession, workspace_id: uuid.UUID, data: WorkspaceSettingsUpdate
) -> Workspace:
    workspace = await get_settings(session, workspace_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        if field == "name" and value is None:
            continue
        setattr(workspace, field, value)
    await session.flush()
    await session.refresh(workspace)
    return workspace
