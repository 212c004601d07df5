"""The transactional outbox: jobs are written with the request's data and sent after commit.

Invariant: a job reaches Redis only after the transaction that asked for it committed (a
rollback sends nothing), and is never lost while Redis is down (the row stays until a worker
marks it done; the sweeper re-sends). The arq job id is the outbox id, so sending twice enqueues
once; the worker also skips a row that is already done.

Services call `add_job` (flush only, never commit); it asks the transaction to hand the job
to the database's `Relay` once it has committed (requests and jobs alike). The relay runs as the
runtime role and marks its rows sent in their own workspace's context, under the outbox's
policy. The sweeps across workspaces (`sweep`, `take_over_expired`) run only as the maintenance
role (the worker's cron jobs), through the definer functions only it may execute.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from app.db.models import Outbox
from app.db.session import Database
from app.db.tenant import Visibility, apply_context
from app.db.transaction import Transaction
from app.jobs import JobKind
from app.security.principal import WorkspaceContext
from app.unavailable import log_failure

log = logging.getLogger("warden.outbox")

PENDING_KEY = "outbox"
MAX_SWEEP_ROUNDS = 20  # x 500 rows per sweep; the next sweep takes the rest
SEND_TIMEOUT = 3.0  # seconds; a dead Redis must not hold a response longer than this


@dataclass(frozen=True)
class Pending:
    """What the relay needs to send one outbox row (ids and the job name only)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    job: str


@dataclass(frozen=True)
class Relay:
    """Where committed jobs go: the arq queue of this process (set on the `Database` by the
    API's lifespan and the worker's startup)."""

    db: Database
    arq: Any
    queue: str

    async def deliver(self, jobs: Sequence[Pending]) -> int:
        return await deliver(self.db, self.arq, self.queue, jobs)


async def add_job(
    ctx: WorkspaceContext,
    kind: JobKind,
    *,
    task_id: uuid.UUID | None = None,
    args: dict[str, Any] | None = None,
) -> Outbox:
    """Write the job, in the caller's name, in the caller's transaction; it is sent once that
    transaction commits (never if it rolls back)."""
    session = ctx.session
    row = Outbox(job=kind.name, user_id=ctx.user_id, task_id=task_id, args=args or {})
    session.add(row)
    await session.flush()
    _after_commit(ctx.tx).append(Pending(row.id, row.workspace_id, ctx.user_id, kind.name))
    return row


def _after_commit(tx: Transaction) -> list[Pending]:
    """The transaction's jobs to relay, registered once for delivery after its commit."""
    jobs: list[Pending] | None = tx.info.get(PENDING_KEY)
    if jobs is None:
        jobs = tx.info[PENDING_KEY] = []
        relay: Relay | None = getattr(tx.database, "relay", None)
        if relay is not None:
            tx.after_commit(lambda: relay.deliver(jobs))
    return jobs


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


Mark = Callable[[Database, Sequence[Pending]], Awaitable[None]]

MARK_SENT_SQL = (
    "UPDATE outbox SET sent_at = now(), send_count = send_count + 1 "
    "WHERE workspace_id = $1 AND id = ANY ($2::uuid[]) AND done_at IS NULL"
)


async def mark_sent_in_context(db: Database, jobs: Sequence[Pending]) -> None:
    """The runtime role's way (the relay): each workspace's rows in that workspace's context,
    as the user who wrote them, under the outbox's policy."""
    by_context: dict[tuple[uuid.UUID, uuid.UUID], list[uuid.UUID]] = {}
    for job in jobs:
        by_context.setdefault((job.workspace_id, job.user_id), []).append(job.id)
    for (workspace_id, user_id), ids in by_context.items():
        async with db.transaction() as tx:
            await apply_context(tx, workspace_id, user_id, Visibility(True))
            await tx.execute(MARK_SENT_SQL, workspace_id, ids)


async def mark_sent(db: Database, jobs: Sequence[Pending]) -> None:
    """The maintenance role's way (the sweeps): rows of any workspace, by id."""
    async with db.transaction() as tx:
        await tx.execute("SELECT warden_outbox_mark_sent($1::uuid[])", [job.id for job in jobs])


async def deliver(
    db: Database,
    arq: Any,
    queue: str,
    jobs: Sequence[Pending],
    *,
    mark: Mark = mark_sent_in_context,
) -> int:
    """Send and record (`mark`: in context for the relay, the definer function for the
    sweeps); on a Redis or database failure log and leave the rest to the sweeper."""
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
        if sent:
            accepted = set(sent)
            await mark(db, [job for job in jobs if job.id in accepted])
    except Exception as exc:  # noqa: BLE001 - a missed mark only means a harmless re-send
        log_failure(log, f"could not mark {len(sent)} outbox rows sent", exc)
    return len(sent)


async def pending(db: Database, redeliver_after: int, limit: int = 500) -> list[Pending]:
    """Rows of every workspace not yet sent, or sent long ago and still not done (through
    the narrow definer function; no context, no bypass). `db`: the maintenance role's."""
    async with db.transaction() as tx:
        rows = await tx.fetch(
            "SELECT id, workspace_id, user_id, job FROM warden_outbox_pending($1, $2)",
            redeliver_after,
            limit,
        )
        return [Pending(r["id"], r["workspace_id"], r["user_id"], r["job"]) for r in rows]


async def sweep(db: Database, arq: Any, queue: str, redeliver_after: int) -> int:
    """Deliver whatever the request-time relay could not (Redis was down, the process died)."""
    total = 0
    for _ in range(MAX_SWEEP_ROUNDS):
        jobs = await pending(db, redeliver_after)
        if not jobs:
            break
        sent = await deliver(db, arq, queue, jobs, mark=mark_sent)
        total += sent
        if sent < len(jobs):
            break
    return total


async def expired_leases(db: Database, limit: int = 500) -> list[Pending]:
    """Jobs of every workspace whose task runs under an expired lease (its worker is gone),
    through the narrow definer function (ids only; the job takes its task over in its own
    workspace's context)."""
    async with db.transaction() as tx:
        rows = await tx.fetch(
            "SELECT id, workspace_id, user_id, job FROM warden_expired_task_leases(0, $1)", limit
        )
        return [Pending(r["id"], r["workspace_id"], r["user_id"], r["job"]) for r in rows]


async def take_over_expired(db: Database, arq: Any, queue: str) -> int:
    """Deliver again the jobs of tasks whose worker is gone: when Redis still has the job this
    is a no-op (arq gives it to another worker once its in-progress mark lapses); when Redis
    lost it, it is queued again."""
    jobs = await expired_leases(db)
    if jobs:
        log.warning("%d running tasks lost their worker; delivering them again", len(jobs))
    return await deliver(db, arq, queue, jobs, mark=mark_sent)
