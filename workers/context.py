"""The job context: the worker's one twin of `get_workspace_session`.

Invariant: a job touches workspace data only inside `with_rls_context`, which opens a
transaction as the runtime role, re-reads the user's membership (role, custom role, provider
visibility) through `warden_member_context`, refuses if the user is no longer an active member
holding the job's permission, and only then runs the same `SET LOCAL`s a request runs (through
`app.db.tenant.apply_context`; this module is the worker's only caller). Without it a job sees
zero rows, because RLS fails closed.

Every job function is wrapped by `job(...)`/`execute`, which claims its outbox row and task
(a job delivered twice runs once), enforces the soft and hard time limits, retries transient
failures with exponential backoff and jitter, and records the outcome on the task.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import Outbox, Task
from app.db.models.job import TERMINAL_STATES
from app.db.session import Database
from app.db.tenant import Visibility, apply_context
from app.jobs import JobKind
from app.logging import task_var
from app.security.grants import row_filters
from app.security.permissions import effective_permissions
from workers.retry import backoff, is_transient

log = logging.getLogger("warden.jobs")

PROGRESS_INTERVAL = 1.0  # seconds between progress writes

_MEMBER_SQL = text(
    "SELECT role, custom_role_id, custom_role_name, inherits_from, grants, revokes, "
    "visible_provider_ids, attributes, workspace_deleted "
    "FROM warden_member_context(:user_id, :workspace_id)"
)


class Refused(Exception):
    """The user may no longer do this; the job ends as `refused` and writes nothing."""


class JobFailed(Exception):
    """A permanent failure with a message meant for the task's reader."""


class SoftTimeLimitExceeded(JobFailed):
    pass


@dataclass(frozen=True)
class JobPrincipal:
    """The job's user in its workspace, as re-read when the transaction began."""

    workspace_id: uuid.UUID
    user_id: uuid.UUID
    base_role: str
    permissions: frozenset[str]
    visible_provider_ids: tuple[uuid.UUID, ...]
    attributes: dict[str, Any]
    workspace_deleted: bool


async def member(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> JobPrincipal | None:
    row = (
        await session.execute(_MEMBER_SQL, {"user_id": user_id, "workspace_id": workspace_id})
    ).one_or_none()
    if row is None:
        return None
    return JobPrincipal(
        workspace_id=workspace_id,
        user_id=user_id,
        base_role=row.role or row.inherits_from or "",
        permissions=effective_permissions(
            row.role, row.inherits_from, row.grants or (), row.revokes or ()
        ),
        visible_provider_ids=tuple(row.visible_provider_ids or ()),
        attributes=dict(row.attributes or {}),
        workspace_deleted=bool(row.workspace_deleted),
    )


@asynccontextmanager
async def with_rls_context(
    db: Database,
    workspace_id: uuid.UUID | str,
    user_id: uuid.UUID | str,
    permission: str,
    *,
    allow_deleted_workspace: bool = False,
    all_providers: bool = False,
) -> AsyncIterator[AsyncSession]:
    """A transaction in `workspace_id` as `user_id`, after re-checking that the user still may
    do `permission` there (else `Refused`, and nothing is written). Commits on success.

    `all_providers` widens provider visibility to the whole workspace (workspace deletion only:
    whoever may delete the workspace deletes every provider's rows).
    """
    ws, user = uuid.UUID(str(workspace_id)), uuid.UUID(str(user_id))
    async with db.sessionmaker() as session, session.begin():
        principal = await member(session, ws, user)
        if principal is None:
            raise Refused("The user is no longer a member of this workspace")
        if principal.workspace_deleted and not allow_deleted_workspace:
            raise Refused("The workspace has been deleted")
        if permission not in principal.permissions:
            raise Refused(f"The user no longer holds the '{permission}' permission")
        unlimited = all_providers or "unlimited_visibility" in principal.permissions
        visibility = Visibility(unlimited, () if unlimited else principal.visible_provider_ids)
        await apply_context(session, ws, user, visibility)
        session.info["row_filters"] = row_filters([principal.base_role], principal.attributes)
        session.info["job_principal"] = principal
        yield session


@asynccontextmanager
async def _bookkeeping(
    db: Database, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> AsyncIterator[AsyncSession]:
    """Context for recording a job's outcome on its own task/outbox rows (and its resource's
    state), also when the user was refused. Never hands a session to job code."""
    async with db.sessionmaker() as session, session.begin():
        await apply_context(session, workspace_id, user_id, Visibility(True))
        yield session


JobBody = Callable[["JobContext", AsyncSession | None], Awaitable[dict[str, Any]]]
Abandon = Callable[[AsyncSession, dict[str, Any], str, str], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    kind: JobKind
    body: JobBody
    atomic: bool = True  # the body runs in one transaction that also records its success
    allow_deleted_workspace: bool = False
    all_providers: bool = False
    on_abandon: Abandon | None = None  # runs when the task ends failed/refused


def job(
    kind: JobKind,
    *,
    atomic: bool = True,
    allow_deleted_workspace: bool = False,
    all_providers: bool = False,
    on_abandon: Abandon | None = None,
) -> Callable[[JobBody], JobSpec]:
    def decorate(body: JobBody) -> JobSpec:
        return JobSpec(kind, body, atomic, allow_deleted_workspace, all_providers, on_abandon)

    return decorate


@dataclass
class JobContext:
    """What a running job knows: who, where, its arguments, and its limits."""

    db: Database
    settings: Settings
    spec: JobSpec
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    outbox_id: uuid.UUID
    attempt: int
    task_id: uuid.UUID | None = None
    args: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _last_progress: float = 0.0

    def transaction(self) -> Any:
        """A new `with_rls_context` transaction for this job (membership re-checked)."""
        return with_rls_context(
            self.db,
            self.workspace_id,
            self.user_id,
            self.spec.kind.permission,
            allow_deleted_workspace=self.spec.allow_deleted_workspace,
            all_providers=self.spec.all_providers,
        )

    def check_time(self) -> None:
        """The soft time limit: raised at the job's next checkpoint, after its progress was
        recorded, so the task shows how far it got."""
        limit = self.settings.job_soft_time_limit
        if time.monotonic() - self.started > limit:
            raise SoftTimeLimitExceeded(f"Soft time limit of {limit:g}s exceeded")

    async def progress(self, percent: int, detail: dict[str, Any], *, force: bool = False) -> None:
        """Record progress (at most once per second unless forced), then check the soft limit.
        Each write re-checks the membership: a user removed mid-job stops the job."""
        now = time.monotonic()
        over = now - self.started > self.settings.job_soft_time_limit
        if force or over or now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            if self.task_id is not None:
                async with self.transaction() as session:
                    await session.execute(
                        update(Task)
                        .where(Task.id == self.task_id, Task.state == "running")
                        .values(progress=max(0, min(percent, 100)), progress_detail=detail)
                    )
        self.check_time()


async def _claim(jc: JobContext) -> bool:
    """Take the job: False if its outbox row is gone or done, or its task already finished
    (a second delivery, a cancelled task). Re-checks the membership first."""
    async with jc.transaction() as session:
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


async def _succeed(session: AsyncSession, jc: JobContext, result: dict[str, Any]) -> None:
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
    async with _bookkeeping(jc.db, jc.workspace_id, jc.user_id) as session:
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
            await jc.spec.on_abandon(session, dict(row.args or {}), state, error[:2000])


async def _note_retry(jc: JobContext, exc: BaseException, delay: float) -> None:
    note = (
        f"Attempt {jc.attempt} of {jc.settings.job_max_tries} failed "
        f"({type(exc).__name__}); retrying in {delay:.1f}s"
    )
    try:
        async with _bookkeeping(jc.db, jc.workspace_id, jc.user_id) as session:
            if jc.task_id is not None:
                await session.execute(
                    update(Task)
                    .where(Task.id == jc.task_id, Task.state == "running")
                    .values(error=note)
                )
    except Exception:  # noqa: BLE001 - the database may be what is failing
        log.info("could not record the retry note", exc_info=True)


async def _run(jc: JobContext) -> dict[str, Any]:
    spec = jc.spec
    if spec.atomic:
        async with jc.transaction() as session:
            result = await spec.body(jc, session)
            await _succeed(session, jc, result)
        return result
    result = await spec.body(jc, None)
    async with _bookkeeping(jc.db, jc.workspace_id, jc.user_id) as session:
        await _succeed(session, jc, result)
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
