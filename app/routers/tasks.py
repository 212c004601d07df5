"""`/ws/{slug}/api/v1/tasks`: what long operations answer with (202 + Content-Location)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from app.db.models import Task
from app.routers.pagination import PageParams
from app.schemas.common import Page
from app.schemas.task import TaskOut
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import tasks

router = APIRouter(prefix="/ws/{slug}/api/v1/tasks", tags=["tasks"])

State = Literal["pending", "running", "succeeded", "failed", "refused", "cancelled"]


@router.get("", response_model=Page[TaskOut])
async def list_tasks(
    ctx: Annotated[WorkspaceContext, Depends(require("task.read"))],
    page: Annotated[PageParams, Depends()],
    state: Annotated[State | None, Query(description="Only tasks in this state")] = None,
) -> dict[str, Any]:
    return page.page(await tasks.list_tasks(ctx.session, page.limit, page.after, state))


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(
    task_id: str, ctx: Annotated[WorkspaceContext, Depends(require("task.read"))]
) -> Task:
    return await tasks.get_task(ctx.session, parse_id(task_id))


@router.post("/{task_id}/cancel", response_model=TaskOut)
async def cancel_task(
    task_id: str, ctx: Annotated[WorkspaceContext, Depends(require("task.cancel"))]
) -> Task:
    """Cancel a pending task (409 once it runs or has finished)."""
    return await tasks.cancel_task(ctx.session, parse_id(task_id))
