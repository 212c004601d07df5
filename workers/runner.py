"""Running one delivery of a job: claim it, run it within its time limits, record the outcome.

Every job function goes through `execute`, which claims the job's outbox row and task under a
lease (a job delivered twice runs once; a task whose worker died is taken over), keeps the
lease alive while the job runs, enforces the soft and hard time limits, retries failures worth
another attempt with exponential backoff and jitter, and records the outcome on the task, only
while it still holds the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from app.unavailable import retryable, unavailable
from workers import lease
from workers.context import JobContext, JobFailed, JobSpec, LeaseLost, Refused, bookkeeping
from workers.retry import backoff

log = logging.getLogger("warden.jobs")


async def _succeed(tx: Transaction, jc: JobContext, result: dict[str, Any]) -> None:
    """Record success in the transaction that holds the job's work: only while this delivery
    holds the task, else nothing of it commits."""
    session = tx.session
    now = datetime.now(UTC)
    if jc.task_id is not None:
        done = await session.execute(
            update(Task)
            .where(Task.id == jc.task_id, Task.state == "running", Task.lease_id == jc.lease_id)
            .values(
                state="succeeded",
                progress=100,
                result=result,
                error=None,
                finished_at=now,
                lease_id=None,
                lease_expires_at=None,
            )
        )
        if done.rowcount == 0:  # type: ignore[attr-defined]
            raise LeaseLost("another delivery holds the task")
    await session.execute(update(Outbox).where(Outbox.id == jc.outbox_id).values(done_at=now))


async def _conclude(jc: JobContext, state: str, error: str) -> None:
    """Record a failed/refused outcome (idempotent: a finished task stays as it is, and a task
    another delivery holds is left to it)."""
    async with bookkeeping(jc.db, jc.workspace_id, jc.user_id) as tx:
        session = tx.session
        row = (
            await session.execute(select(Outbox).where(Outbox.id == jc.outbox_id).with_for_update())
        ).scalar_one_or_none()
        if row is None or row.done_at is not None:
            return
        now = datetime.now(UTC)
        if row.task_id is not None:
            ended = await session.execute(
                update(Task)
                .where(
                    Task.id == row.task_id,
                    Task.state.not_in(TERMINAL_STATES),
                    lease.not_held(jc),
                )
                .values(
                    state=state,
                    error=error[:2000],
                    finished_at=now,
                    lease_id=None,
                    lease_expires_at=None,
                )
            )
            if ended.rowcount == 0:  # type: ignore[attr-defined]
                return  # held by another delivery (or already finished): theirs to record
        row.done_at = now
        if jc.spec.on_abandon is not None:
            await jc.spec.on_abandon(tx, dict(row.args or {}), state, error[:2000])


async def _note_retry(jc: JobContext, exc: BaseException, delay: float) -> None:
    """Say on the task why it waits, and let go of its lease so the retry can take it."""
    note = (
        f"Attempt {jc.attempt} of {jc.settings.job_max_tries} failed "
        f"({type(exc).__name__}); retrying in {delay:.1f}s"
    )
    try:
        async with bookkeeping(jc.db, jc.workspace_id, jc.user_id) as tx:
            if jc.task_id is not None:
                await tx.session.execute(
                    update(Task)
                    .where(
                        Task.id == jc.task_id,
                        Task.state == "running",
                        Task.lease_id == jc.lease_id,
                    )
                    .values(error=note, lease_id=None, lease_expires_at=None)
                )
    except Exception:  # noqa: BLE001 - the database may be what is failing; the lease expires
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


async def _run_leased(jc: JobContext) -> dict[str, Any]:
    """`_run` with the lease's heartbeat beside it (jobs without a task hold no lease)."""
    if jc.task_id is None:
        return await _run(jc)
    work = asyncio.ensure_future(_run(jc))
    heartbeat = asyncio.create_task(lease.keep(jc, work))  # type: ignore[arg-type]
    try:
        return await work
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if jc.lease_lost and work.cancelled() and not (current and current.cancelling()):
            raise LeaseLost("another delivery took the task over") from None
        await lease.release(jc)  # stopped (shutdown, time limit): the next delivery may start
        raise
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat


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
    delivery = ctx.get("job_try", 1)
    hard = settings.job_hard_time_limit
    try:
        try:
            claimed = await lease.claim(jc)
        except Exception as exc:
            if not retryable(exc):
                raise
            # Nothing ran: not an attempt. Wait for the database (or Redis) and come back.
            delay = backoff(
                delivery, settings.job_retry_base_seconds, settings.worker_reconnect_max_seconds
            )
            _log_unavailable(jc, exc, delay)
            raise Retry(defer=delay) from exc
        if claimed.wait is not None:
            log.info("job %s %s: task held by another delivery", spec.kind.name, outbox_id)
            raise Retry(defer=claimed.wait)
        if claimed.exhausted:
            raise JobFailed(
                f"Gave up after {jc.attempt} attempts: the worker running the last one stopped"
            )
        if not claimed.run:
            log.info("job %s %s skipped: already done", spec.kind.name, outbox_id)
            return {"state": "skipped"}
        try:
            async with asyncio.timeout(hard) as limit:
                result = await _run_leased(jc)
        except TimeoutError:
            if limit.expired():
                raise JobFailed(f"Hard time limit of {hard:g}s exceeded") from None
            raise
        return {"state": "succeeded", **result}
    except Retry:
        raise
    except LeaseLost as exc:
        log.warning("job %s %s stopped: %s", spec.kind.name, outbox_id, exc)
        return {"state": "superseded"}
    except Refused as exc:
        outcome, message = "refused", str(exc)
    except JobFailed as exc:
        outcome, message = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - every failure ends up on the task
        return await _retry_or_fail(jc, exc)
    log.info("job %s %s %s: %s", spec.kind.name, outbox_id, outcome, message)
    await _conclude_or_retry(jc, outcome, message)
    return {"state": outcome, "error": message}


def _log_unavailable(jc: JobContext, exc: BaseException, delay: float) -> None:
    lost = unavailable(exc)
    why = f"{lost.dependency} unavailable ({lost.reason})" if lost else type(exc).__name__
    log.warning("job %s %s: %s, retry in %.1fs", jc.spec.kind.name, jc.outbox_id, why, delay)


async def _retry_or_fail(jc: JobContext, exc: BaseException) -> dict[str, Any]:
    if retryable(exc) and jc.attempt < jc.settings.job_max_tries:
        delay = _delay(jc)
        _log_unavailable(jc, exc, delay)
        await _note_retry(jc, exc, delay)
        raise Retry(defer=delay) from exc
    if retryable(exc):
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
        if retryable(exc):
            raise Retry(defer=_delay(jc)) from exc
        raise


def _delay(jc: JobContext) -> float:
    s = jc.settings
    return backoff(jc.attempt, s.job_retry_base_seconds, s.job_retry_max_seconds)
