"""Running one delivery of a job: claim it, run it within its time limits, record the outcome.

Every job function goes through `execute`, which claims the job's outbox row and task (a job
delivered twice runs once), enforces the soft and hard time limits, retries transient failures
with exponential backoff and jitter, and records the outcome on the task.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from sqlalchemy import select, update

from app.config import Settings
from app.db.models import Outbox, Task
from app.db.models.job import TERMINAL_STATES
from app.db.transaction import Transaction
from app.logging import task_var
from workers.context import JobContext, JobFailed, JobSpec, Refused, bookkeeping
from workers.retry import backoff, is_transient

log = logging.getLogger("warden.jobs")


async def _claim(jc: JobContext) -> bool:
    """Take the job: False if its outbox row is gone or done, or its task already finished
    (a second delivery, a cancelled task). Re-checks the membership first."""
    async with jc.transaction() as ctx:
        session = ctx.session
        row = (
            await session.execute(select(Outbox).where(Outbox.id == jc.outbox_id).with_for_update())
        ).scalar_one_or_none()
        if row is None or row.done_at is not None or row.job != jc.spec.kind.name:
            return False
        jc.task_id, jc.args = row.task_id, dict(row.args or {})
        task_var.set(str(row.task_id) if row.task_id else None)  # on this job's log lines
        if row.task_id is None:
            return True
        task = (
            await session.execute(select(Task).where(Task.id == row.task_id).with_for_update())
        ).scalar_one_or_none()
        if task is None:  # it exists (foreign key), so its provider is hidden from the user
            raise Refused("The task's provider is no longer visible to the user")
        if task.state in TERMINAL_STATES:
            row.done_at = datetime.now(UTC)
            return False
        task.state, task.attempts = "running", task.attempts + 1
        task.started_at = task.started_at or datetime.now(UTC)
        return True


async def _succeed(tx: Transaction, jc: JobContext, result: dict[str, Any]) -> None:
    session = tx.session
    now = datetime.now(UTC)
    if jc.task_id is not None:
        await session.execute(
            update(Task)
            .where(Task.id == jc.task_id, Task.state == "running")
            .values(state="succeeded", progress=100, result=result, error=None, finished_at=now)
        )
    await session.execute(update(Outbox).where(Outbox.id == jc.outbox_id).values(done_at=now))


async def _conclude(jc: JobContext, state: str, error: str) -> None:
    """Record a failed/refused outcome (idempotent: a finished task stays as it is)."""
    async with bookkeeping(jc.db, jc.workspace_id, jc.user_id) as tx:
        session = tx.session
        row = (
            await session.execute(select(Outbox).where(Outbox.id == jc.outbox_id).with_for_update())
        ).scalar_one_or_none()
        if row is None or row.done_at is not None:
            return
        now = datetime.now(UTC)
        row.done_at = now
        if row.task_id is not None:
            await session.execute(
                update(Task)
                .where(Task.id == row.task_id, Task.state.not_in(TERMINAL_STATES))
                .values(state=state, error=error[:2000], finished_at=now)
            )
        if jc.spec.on_abandon is not None:
            await jc.spec.on_abandon(tx, dict(row.args or {}), state, error[:2000])


async def _note_retry(jc: JobContext, exc: BaseException, delay: float) -> None:
    note = (
        f"Attempt {jc.attempt} of {jc.settings.job_max_tries} failed "
        f"({type(exc).__name__}); retrying in {delay:.1f}s"
    )
    try:
        async with bookkeeping(jc.db, jc.workspace_id, jc.user_id) as tx:
            if jc.task_id is not None:
                await tx.session.execute(
                    update(Task)
                    .where(Task.id == jc.task_id, Task.state == "running")
                    .values(error=note)
                )
    except Exception:  # noqa: BLE001 - the database may be what is failing
        log.info("could not record the retry note", exc_info=True)


async def _run(jc: JobContext) -> dict[str, Any]:
    spec = jc.spec
    if spec.atomic:
        async with jc.transaction() as ctx:
            result = await spec.body(jc, ctx)
            await _succeed(ctx.tx, jc, result)
        return result
    result = await spec.body(jc, None)
    async with bookkeeping(jc.db, jc.workspace_id, jc.user_id) as tx:
        await _succeed(tx, jc, result)
    return result


async def execute(
    spec: JobSpec, ctx: dict[str, Any], workspace_id: str, user_id: str, outbox_id: str
) -> dict[str, Any]:
    """Run one delivery of a job: claim, run within the time limits, record the outcome."""
    settings: Settings = ctx["settings"]
    jc = JobContext(
        db=ctx["db"],
        settings=settings,
        spec=spec,
        workspace_id=uuid.UUID(workspace_id),
        user_id=uuid.UUID(user_id),
        outbox_id=uuid.UUID(outbox_id),
        attempt=ctx.get("job_try", 1),
    )
    hard = settings.job_hard_time_limit
    try:
        if not await _claim(jc):
            log.info("job %s %s skipped: already done", spec.kind.name, outbox_id)
            return {"state": "skipped"}
        try:
            async with asyncio.timeout(hard) as limit:
                result = await _run(jc)
        except TimeoutError:
            if limit.expired():
                raise JobFailed(f"Hard time limit of {hard:g}s exceeded") from None
            raise
        return {"state": "succeeded", **result}
    except Refused as exc:
        outcome, message = "refused", str(exc)
    except JobFailed as exc:
        outcome, message = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - every failure ends up on the task
        return await _retry_or_fail(jc, exc)
    log.info("job %s %s %s: %s", spec.kind.name, outbox_id, outcome, message)
    await _conclude_or_retry(jc, outcome, message)
    return {"state": outcome, "error": message}


async def _retry_or_fail(jc: JobContext, exc: BaseException) -> dict[str, Any]:
    if is_transient(exc) and jc.attempt < jc.settings.job_max_tries:
        delay = _delay(jc)
        log.warning(
            "job %s %s: transient %s, retry in %.1fs",
            jc.spec.kind.name,
            jc.outbox_id,
            type(exc).__name__,
            delay,
        )
        await _note_retry(jc, exc, delay)
        raise Retry(defer=delay) from exc
    if is_transient(exc):
        message = f"Gave up after {jc.attempt} attempts: {type(exc).__name__}"
    else:
        log.exception("job %s %s failed", jc.spec.kind.name, jc.outbox_id, exc_info=exc)
        message = f"Unexpected error ({type(exc).__name__}); see the worker log"
    await _conclude_or_retry(jc, "failed", message)
    return {"state": "failed", "error": message}


async def _conclude_or_retry(jc: JobContext, state: str, message: str) -> None:
    try:
        await _conclude(jc, state, message)
    except Exception as exc:
        if is_transient(exc):
            raise Retry(defer=_delay(jc)) from exc
        raise


def _delay(jc: JobContext) -> float:
    s = jc.settings
    return backoff(jc.attempt, s.job_retry_base_seconds, s.job_retry_max_seconds)
