"""Task leases: which delivery of a job holds its task, kept alive while it runs.

Invariant: a running task is held by one delivery at a time, named by the delivery's lease id.
A delivery takes the task when it is pending, or running under no lease or an expired one (the
holder's worker died, or lost the database for longer than a lease), and counts an attempt; a
task held under a live lease is left alone. Only the holder records progress, success or
failure, each checked in the statement that writes it, so a holder that was taken over can
never commit its work (the taker's new transaction does it once). Expiry is judged by the
database's clock, never a worker's. The holder renews its lease every
`task_heartbeat_seconds` for `task_lease_seconds`; when a renewal finds the lease gone it stops
the job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update

from app import metrics
from app.db.models import Outbox, Task
from app.db.models.job import TERMINAL_STATES
from app.logging import task_var
from app.unavailable import retryable
from workers.context import JobContext, Refused, bookkeeping

log = logging.getLogger("warden.jobs")

WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"[:200]


@dataclass(frozen=True)
class Claim:
    """What a delivery found: run it, or skip it (done), or retry in `wait` seconds (held by a
    live lease), or give up (no attempts left)."""

    run: bool = False
    wait: float | None = None
    exhausted: bool = False


def not_held(jc: JobContext) -> ColumnElement[bool]:
    """A task's lease is this delivery's, or nobody's (none, or expired)."""
    return or_(
        Task.lease_id.is_(None),
        Task.lease_id == jc.lease_id,
        Task.lease_expires_at < func.now(),
    )


async def claim(jc: JobContext) -> Claim:
    """Take the job's task under this delivery's lease (re-checking the membership first)."""
    lease = jc.settings.task_lease_seconds
    async with jc.transaction() as ctx:
        session = ctx.session
        row = (
            await session.execute(select(Outbox).where(Outbox.id == jc.outbox_id).with_for_update())
        ).scalar_one_or_none()
        if row is None or row.done_at is not None or row.job != jc.spec.kind.name:
            return Claim()
        jc.task_id, jc.args = row.task_id, dict(row.args or {})
        task_var.set(str(row.task_id) if row.task_id else None)  # on this job's log lines
        if row.task_id is None:
            return Claim(run=True)
        found = (
            await session.execute(
                select(Task, func.extract("epoch", Task.lease_expires_at - func.now()))
                .where(Task.id == row.task_id)
                .with_for_update(of=Task)
            )
        ).one_or_none()
        if found is None:  # it exists (foreign key), so its provider is hidden from the user
            raise Refused("The task's provider is no longer visible to the user")
        task, remaining = found
        if task.state in TERMINAL_STATES:
            row.done_at = datetime.now(UTC)
            return Claim()
        taken_over = task.state == "running" and task.lease_id is not None
        if taken_over and remaining is not None and remaining > 0:
            return Claim(wait=float(remaining) + 0.5)
        if task.attempts >= jc.settings.job_max_tries:
            jc.attempt = task.attempts
            return Claim(exhausted=True)
        if taken_over:
            metrics.TAKEOVERS.labels(jc.spec.kind.name).inc()
            log.warning(
                "job %s %s: taking over task %s from %s (lease expired)",
                jc.spec.kind.name,
                jc.outbox_id,
                task.id,
                task.leased_by,
            )
        jc.attempt = task.attempts + 1  # read before the update refreshes `task`
        await session.execute(
            update(Task)
            .where(Task.id == task.id)
            .values(
                state="running",
                attempts=Task.attempts + 1,
                # (no clock inside COALESCE: Citus refuses it in an UPDATE)
                started_at=Task.started_at if task.started_at is not None else func.now(),
                lease_id=jc.lease_id,
                lease_expires_at=func.now() + timedelta(seconds=lease),
                leased_by=WORKER_NAME,
            )
        )
        return Claim(run=True)


async def renew(jc: JobContext) -> bool:
    """Extend this delivery's lease; False when it no longer holds the task."""
    lease = jc.settings.task_lease_seconds
    async with bookkeeping(jc.db, jc.workspace_id, jc.user_id) as tx:
        result = await tx.session.execute(
            update(Task)
            .where(Task.id == jc.task_id, Task.state == "running", Task.lease_id == jc.lease_id)
            .values(lease_expires_at=func.now() + timedelta(seconds=lease))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def keep(jc: JobContext, work: asyncio.Task[object]) -> None:
    """The heartbeat: renew the lease while `work` runs; cancel `work` when the lease is gone.
    A renewal that fails (the database is away) is tried again at the next beat: the work's
    own statements fail meanwhile, and its commit checks the lease anyway."""
    while not work.done():
        await asyncio.sleep(jc.settings.task_heartbeat_seconds)
        try:
            held = await renew(jc)
        except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive an outage
            if not retryable(exc):
                log.exception("job %s %s: lease renewal failed", jc.spec.kind.name, jc.outbox_id)
            else:
                log.warning(
                    "job %s %s: lease not renewed (%s)",
                    jc.spec.kind.name,
                    jc.outbox_id,
                    type(exc).__name__,
                )
            continue
        if not held:
            jc.lease_lost = True
            work.cancel()
            return


async def release(jc: JobContext) -> None:
    """Let go of the task (the job was stopped: the worker is shutting down), so the next
    delivery takes it at once instead of after the lease. Best effort, briefly."""
    try:
        async with asyncio.timeout(2):
            async with bookkeeping(jc.db, jc.workspace_id, jc.user_id) as tx:
                await tx.session.execute(
                    update(Task)
                    .where(Task.id == jc.task_id, Task.lease_id == jc.lease_id)
                    .values(lease_id=None, lease_expires_at=None)
                )
    except Exception:  # noqa: BLE001 - the lease then simply expires
        log.info("job %s %s: lease not released", jc.spec.kind.name, jc.outbox_id)
