"""`workspace.delete`: remove a deleted workspace's rows in batches, then the workspace."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.jobs import DELETE_WORKSPACE
from app.security.principal import WorkspaceContext
from app.services import workspace_deletion
from workers.context import JobContext, JobFailed, job

ROUNDS = 3  # a row written concurrently (a job that was already running) gets another round


@job(DELETE_WORKSPACE, atomic=False, allow_deleted_workspace=True, unrestricted=True)
async def delete_workspace(jc: JobContext, _: WorkspaceContext | None) -> dict[str, Any]:
    """Each batch is its own transaction in the workspace's context (the owner's membership is
    re-checked every time); the member rows and the workspace row go in the last one."""
    removed: Counter[str] = Counter()
    size = jc.settings.workspace_delete_batch
    for _round in range(ROUNDS):
        async with jc.transaction() as ctx:
            batched, final = await workspace_deletion.purge_plan(ctx)
        for table in batched:
            while True:
                async with jc.transaction() as ctx:
                    count = await workspace_deletion.delete_batch(ctx, table, size)
                removed[table.name] += count
                await jc.progress(0, {"removed": dict(removed)})
                if count < size:
                    break
        while True:
            async with jc.transaction() as ctx:
                count = await workspace_deletion.purge_audit_batch(ctx, size)
            removed["audit"] += count
            if count < size:
                break
        try:
            async with jc.transaction() as ctx:
                removed["membership+"] += await workspace_deletion.finish(ctx, final)
        except IntegrityError:
            continue  # something was written meanwhile; purge again
        return {"removed": dict(removed)}
    raise JobFailed("Rows kept appearing while the workspace was being deleted")
