"""Tasks: what a `202 Accepted` points at. Created with their job; read, listed, cancelled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update

from app.db.models import Outbox, Scan, ScanUpload, Task
from app.db.models.job import TASK_STATES
from app.db.transaction import Transaction
from app.errors import Conflict, NotFound
from app.jobs import IMPORT_SCAN, JOBS, JobKind
from app.query import Enum, Field, Integer, ListQuery, Resource, Text, Timestamp, Uuid
from app.security.principal import WorkspaceContext
from app.services import outbox


def location(slug: str, task_id: uuid.UUID) -> str:
    """The `Content-Location` of a task."""
    return f"/ws/{slug}/api/v1/tasks/{task_id}"


async def start(
    ctx: WorkspaceContext,
    kind: JobKind,
    *,
    resource_type: str | None = None,
    resource_id: uuid.UUID | None = None,
    provider_id: uuid.UUID | None = None,
    args: dict[str, Any] | None = None,
) -> Task:
    """A pending task and the outbox row of its job (in the caller's name), in the caller's
    transaction."""
    session = ctx.session
    task = Task(
        kind=kind.name,
        state="pending",
        created_by=ctx.user_id,
        resource_type=resource_type,
        resource_id=resource_id,
        provider_id=provider_id,
    )
    session.add(task)
    await session.flush()
    await outbox.add_job(ctx, kind, task_id=task.id, args=args)
    await session.refresh(task)
    return task


async def get_task(ctx: WorkspaceContext, task_id: uuid.UUID) -> Task:
    stmt = select(Task).where(Task.id == task_id)
    task = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if task is None:
        raise NotFound("Task not found")
    return task


TASKS = Resource(
    name="task",
    base=lambda: select(Task),
    fields={
        "id": Field(Task.id, Uuid()),
        "kind": Field(Task.kind, Enum(tuple(JOBS))),
        "state": Field(Task.state, Enum(TASK_STATES)),
        "progress": Field(Task.progress, Integer()),
        "resource_type": Field(Task.resource_type, Text(), nullable=True),
        "resource_id": Field(Task.resource_id, Uuid(), nullable=True),
        "provider_id": Field(Task.provider_id, Uuid(), nullable=True),
        "created_by": Field(Task.created_by, Uuid()),
        "created_at": Field(Task.created_at, Timestamp()),
        "updated_at": Field(Task.updated_at, Timestamp()),
    },
)


async def list_tasks(ctx: WorkspaceContext, query: ListQuery) -> list[Task]:
    return list((await ctx.session.execute(query.statement())).scalars())


async def cancel_task(ctx: WorkspaceContext, task_id: uuid.UUID) -> Task:
    """Cancel a pending task. Its job, when it arrives, finds the task finished and does
    nothing. A running task cannot be cancelled (409)."""
    session = ctx.session
    task = (
        await session.execute(select(Task).where(Task.id == task_id).with_for_update())
    ).scalar_one_or_none()
    if task is None:
        raise NotFound("Task not found")
    if task.state != "pending":
        raise Conflict(f"Only a pending task can be cancelled; this one is {task.state}")
    now = datetime.now(UTC)
    task.state, task.finished_at, task.error = "cancelled", now, "Cancelled by a user"
    await session.execute(
        update(Outbox)
        .where(Outbox.task_id == task_id, Outbox.done_at.is_(None))
        .values(done_at=now)
    )
    if task.kind == IMPORT_SCAN.name and task.resource_id is not None:
        await abandon_scan(ctx.tx, task.resource_id, "cancelled", "Cancelled by a user")
    await session.flush()
    await session.refresh(task)
    return task


async def abandon_scan(tx: Transaction, scan_id: uuid.UUID, state: str, error: str) -> None:
    """A scan whose import will not run: record why, and free its upload (also run by the
    worker's bookkeeping when a job ends failed or refused)."""
    session = tx.session
    await session.execute(
        update(Scan)
        .where(Scan.id == scan_id, Scan.state.in_(("pending", "running")))
        .values(state=state, error=error, completed_at=datetime.now(UTC))
    )
    await session.execute(delete(ScanUpload).where(ScanUpload.scan_id == scan_id))
