"""The transactional outbox: jobs are written with the request's data and sent after commit.

Invariant: a job reaches Redis only after the transaction that asked for it committed (a
rollback sends nothing), and is never lost while Redis is down (the row stays until a worker
marks it done; the sweeper re-sends). The arq job id is the outbox id, so sending twice enqueues
once; the worker also skips a row that is already done.

Services call `add_job` (flush only, never commit). `get_workspace_session` calls
`relay_committed` right after its transaction commits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.models import Outbox
from app.jobs import JobKind

log = logging.getLogger("warden.outbox")

SESSION_KEY = "outbox"
MAX_SWEEP_ROUNDS = 20  # x 500 rows per sweep; the next sweep takes the rest
SEND_TIMEOUT = 3.0  # seconds; a dead Redis must not hold a response longer than this


@dataclass(frozen=True)
class Pending:
    """What the relay needs to send one outbox row (ids and the job name only)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    job: str


async def add_job(
    session: AsyncSession,
    kind: JobKind,
    *,
    user_id: uuid.UUID,
    task_id: uuid.UUID | None = None,
    args: dict[str, Any] | None = None,
) -> Outbox:
    """Write the job in the caller's transaction; it is sent once that transaction commits."""
    row = Outbox(job=kind.name, user_id=user_id, task_id=task_id, args=args or {})
    session.add(row)
    await session.flush()
    session.info.setdefault(SESSION_KEY, []).append(
        Pending(row.id, row.workspace_id, user_id, kind.name)
    )
    return row


async def send(arq: Any, queue: str, jobs: Sequence[Pending]) -> list[uuid.UUID]:
    """Enqueue each job under its outbox id; return the ids Redis accepted (or already had)."""
    sent = []
    for job in jobs:
        await arq.enqueue_job(
            job.job,
            str(job.workspace_id),
            str(job.user_id),
            str(job.id),
            _job_id=str(job.id),
            _queue_name=queue,
        )
        sent.append(job.id)  # None from arq means "already queued or done": also delivered
    return sent


async def mark_sent(engine: AsyncEngine, ids: Sequence[uuid.UUID]) -> None:
    if not ids:
        return
    async with engine.begin() as conn:
        await conn.execute(text("SELECT warden_outbox_mark_sent(:ids)"), {"ids": list(ids)})


async def deliver(engine: AsyncEngine, arq: Any, queue: str, jobs: Sequence[Pending]) -> int:
    """Send and record; on a Redis or database failure log and leave the rest to the sweeper."""
    if not jobs:
        return 0
    sent: list[uuid.UUID] = []
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            sent = await send(arq, queue, jobs)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("job delivery deferred to the sweeper: %s", type(exc).__name__)
    except Exception:  # noqa: BLE001 - the data is committed; the sweeper delivers later
        log.exception("job delivery failed; deferred to the sweeper")
    try:
        await mark_sent(engine, sent)
    except Exception:  # noqa: BLE001 - a missed mark only means a harmless re-send
        log.warning("could not mark %d outbox rows sent", len(sent), exc_info=True)
    return len(sent)


async def relay_committed(state: Any, session_info: dict[str, Any]) -> None:
    """After the request's commit: send the jobs its transaction wrote (`add_job` noted them in
    the session's `info`; none on rollback, because this is never reached then)."""
    jobs = session_info.pop(SESSION_KEY, None)
    if jobs:
        await deliver(state.db.engine, state.arq, state.settings.job_queue_name, jobs)


async def pending(engine: AsyncEngine, redeliver_after: int, limit: int = 500) -> list[Pending]:
    """Rows of every workspace not yet sent, or sent long ago and still not done (through
    the narrow definer function; no context, no bypass)."""
    async with engine.begin() as conn:
        rows = await conn.execute(
            text("SELECT id, workspace_id, user_id, job FROM warden_outbox_pending(:s, :n)"),
            {"s": redeliver_after, "n": limit},
        )
        return [Pending(r.id, r.workspace_id, r.user_id, r.job) for r in rows]


async def sweep(engine: AsyncEngine, arq: Any, queue: str, redeliver_after: int) -> int:
    """Deliver whatever the request-time relay could not (Redis was down, the process died)."""
    total = 0
    for _ in range(MAX_SWEEP_ROUNDS):
        jobs = await pending(engine, redeliver_after)
        if not jobs:
            break
        sent = await deliver(engine, arq, queue, jobs)
        total += sent
        if sent < len(jobs):
            break
    return total
