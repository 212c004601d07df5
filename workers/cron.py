"""Cron jobs. They run without a user: each calls narrow definer functions, as the maintenance
role (`ctx["maintenance_db"]`, WARDEN_MAINTENANCE_DATABASE_URL), the only role that may execute
them; never on the runtime role's pool.

Each is `outage_tolerant`: a run that meets an unavailable database or Redis logs one line and
ends (the next run does the work), instead of a traceback every few seconds of an outage.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from arq.typing import WorkerCoroutine

from app.config import Settings
from app.db.hardening import stuck_task_seconds
from app.jobs import DELETE_WORKSPACE
from app.services import audit_chain, maintenance, outbox
from app.unavailable import log_failure, unavailable

log = logging.getLogger("warden.cron")
T = TypeVar("T")


def outage_tolerant(fn: Callable[[dict[str, Any]], Coroutine[Any, Any, T]]) -> WorkerCoroutine:
    @functools.wraps(fn)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T | None:
        try:
            return await fn(ctx)
        except Exception as exc:
            if unavailable(exc) is None:
                raise
            log_failure(log, f"cron {fn.__name__} skipped", exc)
            return None

    return cast(WorkerCoroutine, run)


@outage_tolerant
async def sweep_outbox(ctx: dict[str, Any]) -> int:
    """Deliver jobs the request-time relay could not (Redis was down, a process died)."""
    settings: Settings = ctx["settings"]
    return await outbox.sweep(
        ctx["maintenance_db"],
        ctx["redis"],
        settings.job_queue_name,
        settings.outbox_redeliver_seconds,
    )


@outage_tolerant
async def take_over_expired_tasks(ctx: dict[str, Any]) -> int:
    """Deliver again the jobs of running tasks whose lease expired (their worker is gone)."""
    settings: Settings = ctx["settings"]
    return await outbox.take_over_expired(
        ctx["maintenance_db"], ctx["redis"], settings.job_queue_name
    )


async def redeliver_after_outage(ctx: dict[str, Any]) -> int:
    """Redis is back, perhaps empty: send every job not done yet again (a job Redis still has
    is not queued twice; one that is done does nothing)."""
    settings: Settings = ctx["settings"]
    return await outbox.sweep(ctx["maintenance_db"], ctx["redis"], settings.job_queue_name, 0)


@outage_tolerant
async def prune_idempotency_keys(ctx: dict[str, Any]) -> int:
    return await maintenance.prune_idempotency_keys(ctx["maintenance_db"])


@outage_tolerant
async def maintain_partitions(ctx: dict[str, Any]) -> dict[str, Any]:
    settings: Settings = ctx["settings"]
    return await maintenance.ensure_partitions(
        ctx["maintenance_db"], settings.finding_partitions_ahead
    )


@outage_tolerant
async def task_retention(ctx: dict[str, Any]) -> dict[str, int]:
    settings: Settings = ctx["settings"]
    return await maintenance.task_retention(
        ctx["maintenance_db"], settings.task_retention_days, stuck_task_seconds(settings)
    )


@outage_tolerant
async def seal_audit(ctx: dict[str, Any]) -> int:
    """Link newly committed audit records into their workspace's hash chain (every few seconds,
    so requests never wait on a per-workspace lock); each new head is signed and published."""
    return await audit_chain.seal_pending(
        ctx["maintenance_db"], settings=ctx.get("settings"), redis=ctx.get("redis")
    )


@outage_tolerant
async def audit_retention(ctx: dict[str, Any]) -> dict[str, Any]:
    """Remove audit records past each workspace's retention, recording the cut."""
    result = await audit_chain.apply_retention(ctx["maintenance_db"])
    return {"removed": result.removed, "cuts": [[str(w), seq] for w, seq in result.cuts]}


@outage_tolerant
async def finish_deletions(ctx: dict[str, Any]) -> dict[str, Any]:
    """Deleted workspaces past the audit trail's grace period: their trail, then the workspace
    row, removed as the member who asked for the deletion (re-checked as in the job)."""
    from workers.context import Refused, with_rls_context
    from workers.jobs.workspaces import remove_workspace

    db, settings = ctx["db"], ctx["settings"]
    async with ctx["maintenance_db"].transaction() as tx:
        due = await tx.fetch("SELECT workspace_id, deleted_by FROM warden_deletions_due(100)")
    done: dict[str, Any] = {}
    for row in due:
        if row["deleted_by"] is None:
            continue

        def transaction(ws: Any = row["workspace_id"], user: Any = row["deleted_by"]) -> Any:
            return with_rls_context(
                db,
                ws,
                user,
                DELETE_WORKSPACE.permission,
                allow_deleted_workspace=True,
                unrestricted=True,
            )

        async def progress(detail: dict[str, Any]) -> None:
            return None

        try:
            done[str(row["workspace_id"])] = await remove_workspace(
                transaction, settings.workspace_delete_batch, progress
            )
        except Refused as exc:
            log.warning("deleted workspace %s left: %s", row["workspace_id"], exc)
    return done
