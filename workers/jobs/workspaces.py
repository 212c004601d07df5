"""`workspace.delete`: remove a deleted workspace's rows in batches; then, once the deletion is
older than the audit trail's grace period, the trail and the workspace."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.jobs import DELETE_WORKSPACE
from app.security.principal import WorkspaceContext
from app.services import workspace_deletion
from app.services.workspace_deletion import TrailKept
from workers.context import JobContext, JobFailed, job

ROUNDS = 3  # a row written concurrently (a job that was already running) gets another round

Transaction = Callable[[], AbstractAsyncContextManager[WorkspaceContext]]
Progress = Callable[[dict[str, Any]], Awaitable[None]]


async def remove_workspace(
    transaction: Transaction, size: int, progress: Progress
) -> dict[str, Any]:
    """Each batch is its own transaction in the workspace's context (the member's rights are
    re-checked every time); the member rows and the workspace row go in the last one. While
    the trail is kept, the result says until when and the workspace row stays (hidden)."""
    removed: Counter[str] = Counter()
    for _round in range(ROUNDS):
        async with transaction() as ctx:
            batched, final = await workspace_deletion.purge_plan(ctx)
        for table in batched:
            while True:
                async with transaction() as ctx:
                    count = await workspace_deletion.delete_batch(ctx, table, size)
                removed[table.name] += count
                await progress({"removed": dict(removed)})
                if count < size:
                    break
        try:
            while True:
                async with transaction() as ctx:
                    count = await workspace_deletion.purge_audit_batch(ctx, size)
                removed["audit"] += count
                if count < size:
                    break
        except TrailKept as kept:
            return {"removed": dict(removed), "audit_kept": str(kept)}
        try:
            async with transaction() as ctx:
                removed["membership+"] += await workspace_deletion.finish(ctx, final)
        except IntegrityError:
            continue  # something was written meanwhile; purge again
        return {"removed": dict(removed)}
    raise JobFailed("Rows kept appearing while the workspace was being deleted")


@job(DELETE_WORKSPACE, atomic=False, allow_deleted_workspace=True, unrestricted=True)
async def delete_workspace(jc: JobContext, _: WorkspaceContext | None) -> dict[str, Any]:
    """The workspace's rows now; its trail and row when the grace period allows (else the
    `finish_deletions` cron removes them later, as the member who asked)."""

    async def progress(detail: dict[str, Any]) -> None:
        await jc.progress(0, detail)

    return await remove_workspace(jc.transaction, jc.settings.workspace_delete_batch, progress)
