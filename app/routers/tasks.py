"""`/ws/{slug}/api/v1/tasks`: what long operations answer with (202 + Content-Location)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.db.models import Task
from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.task import TaskOut
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import tasks
from app.services.tasks import TASKS

router = APIRouter(prefix="/ws/{slug}/api/v1/tasks", tags=["tasks"], route_class=AuditedRoute)

Reader = Annotated[WorkspaceContext, Depends(require("task.read"))]


@router.get("", response_model=Page[TaskOut], description=TASKS.doc("List background tasks."))
async def list_tasks(
    ctx: Reader, query: Annotated[ListQuery, Depends(TASKS.list_query)]
) -> dict[str, Any]:
    return query.page(await tasks.list_tasks(ctx, query))


@router.post("/search/{field}", response_model=Page[TaskOut])
async def search_tasks(
    ctx: Reader, query: Annotated[ListQuery, Depends(TASKS.search_query)]
) -> dict[str, Any]:
    """Tasks whose `field` is one of the JSON list of values in the body."""
    return query.page(await tasks.list_tasks(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_tasks(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(TASKS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the tasks you may see (filters apply)."""
    return await distinct(ctx, query)


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(task_id: str, ctx: Reader) -> Task:
    return await tasks.get_task(ctx, parse_id(task_id))


@router.post("/{task_id}/cancel", response_model=TaskOut)
async def cancel_task(
    task_id: str, ctx: Annotated[WorkspaceContext, Depends(require("task.cancel"))]
) -> Task:
    """Cancel a pending task (409 once it runs or has finished)."""
    return await tasks.cancel_task(ctx, parse_id(task_id))
