"""The job context: the worker's one twin of the request's workspace dependency.

Invariant: a job touches workspace data only inside `with_rls_context`, which opens a
transaction as the runtime role, re-reads the user's membership (role, custom role, provider
visibility, attributes), refuses if the user is no longer an active member holding the job's
permission, and only then builds the principal and enters the workspace with the very functions
a request uses. Without it a job sees zero rows, because RLS fails closed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update

from app.config import Settings
from app.db.models import Task
from app.db.session import Database
from app.db.tenant import Visibility, apply_context
from app.db.transaction import Transaction
from app.jobs import JobKind
from app.security.principal import (
    MEMBER_CONTEXT_SQL,
    WorkspaceContext,
    enter_workspace,
    principal_from_row,
)

PROGRESS_INTERVAL = 1.0  # seconds between progress writes


class Refused(Exception):
    """The user may no longer do this; the job ends as `refused` and writes nothing."""


class JobFailed(Exception):
    """A permanent failure with a message meant for the task's reader."""


class SoftTimeLimitExceeded(JobFailed):
    pass


class LeaseLost(Exception):  # noqa: N818 - an outcome, not a failure of this code
    """Another delivery holds the task now (this one's lease expired and was taken over): stop
    and record nothing; the holder finishes the task."""


@asynccontextmanager
async def with_rls_context(
    db: Database,
    workspace_id: uuid.UUID | str,
    user_id: uuid.UUID | str,
    permission: str,
    *,
    allow_deleted_workspace: bool = False,
    unrestricted: bool = False,
) -> AsyncIterator[WorkspaceContext]:
    """A transaction in `workspace_id` as `user_id`, after re-checking that the user still may
    do `permission` there (else `Refused`, and nothing is written). Commits on success.

    `unrestricted` also requires that the user sees every row of the workspace (no row grant,
    unlimited visibility): a job that must touch every row (deleting the workspace) runs only
    for such a member, as the request that queued it did.
    """
    ws, user = uuid.UUID(str(workspace_id)), uuid.UUID(str(user_id))
    async with db.transaction() as tx:
        row = await tx.lookup(MEMBER_CONTEXT_SQL, user, ws)
        if row is None:
            raise Refused("The user is no longer a member of this workspace")
        if row["workspace_deleted"] and not allow_deleted_workspace:
            raise Refused("The workspace has been deleted")
        principal = principal_from_row(user, ws, row)
        if not principal.can(permission):
            raise Refused(f"The user no longer holds the '{permission}' permission")
        if unrestricted and not principal.unrestricted:
            raise Refused("The user no longer sees every provider of the workspace")
        yield await enter_workspace(tx, principal)


@asynccontextmanager
async def bookkeeping(
    db: Database, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> AsyncIterator[Transaction]:
    """Context for recording a job's outcome on its own task/outbox rows (and its resource's
    state), also when the user was refused. Never hands a transaction to job code."""
    async with db.transaction() as tx:
        await apply_context(tx, workspace_id, user_id, Visibility(True))
        yield tx


JobBody = Callable[["JobContext", WorkspaceContext | None], Awaitable[dict[str, Any]]]
Abandon = Callable[[Transaction, dict[str, Any], str, str], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    kind: JobKind
    body: JobBody
    atomic: bool = True  # the body runs in one transaction that also records its success
    allow_deleted_workspace: bool = False
    unrestricted: bool = False  # the user must see every row of the workspace
    on_abandon: Abandon | None = None  # runs when the task ends failed/refused


def job(
    kind: JobKind,
    *,
    atomic: bool = True,
    allow_deleted_workspace: bool = False,
    unrestricted: bool = False,
    on_abandon: Abandon | None = None,
) -> Callable[[JobBody], JobSpec]:
    def decorate(body: JobBody) -> JobSpec:
        return JobSpec(kind, body, atomic, allow_deleted_workspace, unrestricted, on_abandon)

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
    # This delivery's hold on its task (a new id per delivery, so a retry or a takeover by the
    # same worker is a different holder).
    lease_id: uuid.UUID = field(default_factory=uuid.uuid4)
    lease_lost: bool = False
    started: float = field(default_factory=time.monotonic)
    _last_progress: float = 0.0

    def transaction(self) -> AbstractAsyncContextManager[WorkspaceContext]:
        """A new `with_rls_context` transaction for this job (membership re-checked)."""
        return with_rls_context(
            self.db,
            self.workspace_id,
            self.user_id,
            self.spec.kind.permission,
            allow_deleted_workspace=self.spec.allow_deleted_workspace,
            unrestricted=self.spec.unrestricted,
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
                async with self.transaction() as ctx:
                    written = await ctx.session.execute(
                        update(Task)
                        .where(
                            Task.id == self.task_id,
                            Task.state == "running",
                            Task.lease_id == self.lease_id,
                        )
                        .values(progress=max(0, min(percent, 100)), progress_detail=detail)
                    )
                    if written.rowcount == 0:  # type: ignore[attr-defined]
                        raise LeaseLost("another delivery holds the task")
        self.check_time()
