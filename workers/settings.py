"""arq `WorkerSettings`: the job functions, the cron jobs, startup and shutdown.

`warden worker` runs it with the `WARDEN_` settings (`run`); tests build an in-process burst
worker with `create_worker(settings, burst=True)`.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import replace
from typing import Any

from arq import Retry, cron
from arq.connections import RedisSettings
from arq.worker import Function, func

from app import metrics
from app.config import Settings, get_settings
from app.db.catalog import runtime_role_refusal
from app.db.session import Database, make_engine
from app.jobs import (
    CRON_AUDIT_RETENTION,
    CRON_AUDIT_SEAL,
    CRON_FINISH_DELETIONS,
    CRON_IDEMPOTENCY,
    CRON_PARTITIONS,
    CRON_RETENTION,
    CRON_SWEEP_OUTBOX,
    CRON_TAKE_OVER,
)
from app.logging import kind_var, task_var, user_var, workspace_var
from app.services import outbox
from app.unavailable import log_failure, retry_while_unavailable
from workers import cron as cron_jobs
from workers import metrics_server
from workers.context import JobSpec
from workers.jobs.notifications import notify_change, notify_incident, notify_invitation
from workers.jobs.scans import import_scan
from workers.jobs.workspaces import delete_workspace
from workers.runner import execute
from workers.worker import ResilientWorker

log = logging.getLogger("warden.worker")

JOBS: tuple[JobSpec, ...] = (
    import_scan,
    delete_workspace,
    notify_change,
    notify_incident,
    notify_invitation,
)
_DEFAULTS = Settings(_env_file=None)  # type: ignore[call-arg]
# Deliveries arq allows one job before it drops it: far beyond the task's own attempt limit.
ARQ_MAX_TRIES = 1000


class UnsafeDatabaseRole(RuntimeError):
    pass


def arq_function(spec: JobSpec, settings: Settings = _DEFAULTS) -> Function:
    """The arq function for a job: every call goes through the runner's `execute`.

    arq's own timeout and try limit are backstops only; the wrapper enforces the configured
    hard limit and counts attempts on the task (deliveries that could not start, during an
    outage or while another delivery holds the task, are not attempts), and records the outcome
    on the task, so arq keeps no result (a kept result would make arq refuse to queue the same
    job id again when a task has to be taken over).
    """

    async def run(ctx: dict[str, Any], workspace_id: str, user_id: str, outbox_id: str) -> Any:
        return await observed(spec, ctx, workspace_id, user_id, outbox_id)

    run.__qualname__ = run.__name__ = spec.kind.name
    return func(
        run,
        name=spec.kind.name,
        timeout=settings.job_hard_time_limit + 60,
        max_tries=ARQ_MAX_TRIES,
        keep_result=0,
    )


async def observed(
    spec: JobSpec, ctx: dict[str, Any], workspace_id: str, user_id: str, outbox_id: str
) -> dict[str, Any]:
    """One delivery, logged (task id, kind, workspace, outcome) and counted by kind and
    outcome; `retry` when it will run again, `error` when it raised."""
    kind = spec.kind.name
    for var, value in ((kind_var, kind), (workspace_var, workspace_id), (user_var, user_id)):
        var.set(value)
    task_var.set(None)
    started, outcome = time.perf_counter(), "error"
    try:
        result = await execute(spec, ctx, workspace_id, user_id, outbox_id)
        outcome = str(result.get("state", "unknown"))
        if outcome == "succeeded" and isinstance(result.get("imported"), int):
            metrics.FINDINGS_IMPORTED.inc(result["imported"])
        return result
    except Retry:
        outcome = "retry"
        raise
    finally:
        elapsed = time.perf_counter() - started
        metrics.TASKS.labels(kind, outcome).inc()
        metrics.TASK_SECONDS.labels(kind, outcome).observe(elapsed)
        log.info(
            "task finished",
            extra={"outcome": outcome, "outbox_id": outbox_id, "duration_ms": round(elapsed * 1e3)},
        )


def maintenance_database(settings: Settings) -> Database:
    """The cron jobs' own small pool, as the maintenance role."""
    if not settings.maintenance_database_url:
        raise RuntimeError("WARDEN_MAINTENANCE_DATABASE_URL is not set")
    return Database(make_engine(settings.maintenance_database_url, settings, pool_size=2))


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.setdefault("settings", get_settings())
    db = Database.from_settings(settings, pool_size=settings.worker_max_jobs * 2 + 2)
    maintenance = maintenance_database(settings)

    async def role_refusal() -> str | None:
        for engine in (db.engine, maintenance.engine):
            async with engine.connect() as conn:
                reason = await runtime_role_refusal(conn)
            if reason:
                return reason
        return None

    # Started while the database is down (or restarting): wait for it.
    reason = await retry_while_unavailable(
        role_refusal,
        what="worker startup",
        log=log,
        max_delay=settings.worker_reconnect_max_seconds,
    )
    if reason:
        await db.dispose()
        await maintenance.dispose()
        raise UnsafeDatabaseRole(f"refusing to run jobs: {reason}")
    ctx["db"] = db
    ctx["maintenance_db"] = maintenance
    # Jobs that jobs write (e.g. notifications) are sent when their transaction commits.
    db.relay = outbox.Relay(db, ctx["redis"], settings.job_queue_name)
    metrics.watch_pool(db.engine, "worker")
    metrics.watch_pool(maintenance.engine, "maintenance")
    ctx["metrics_server"] = await metrics_server.start(ctx, settings)
    try:
        await cron_jobs.maintain_partitions(ctx)
        sent = await outbox.sweep(
            maintenance, ctx["redis"], settings.job_queue_name, settings.outbox_redeliver_seconds
        )
        if sent:
            log.info("delivered %d jobs left in the outbox", sent)
    except Exception as exc:  # noqa: BLE001 - the crons retry; the worker must still start
        log_failure(log, "startup maintenance failed", exc)
    # Everything built so far lives as long as the process: keep it out of the collector's
    # full passes, which large imports (many short-lived objects) would otherwise repeat.
    gc.freeze()


async def shutdown(ctx: dict[str, Any]) -> None:
    server = ctx.pop("metrics_server", None)
    if server is not None:
        server.close()
    for name in ("db", "maintenance_db"):
        db = ctx.pop(name, None)
        if db is not None:
            await db.dispose()


class WorkerSettings:
    """For arq itself (`arq workers.settings.WorkerSettings`); `warden worker` adds the Redis
    URL, queue name and limits from the WARDEN_ settings."""

    functions = [arq_function(spec) for spec in JOBS]
    cron_jobs = [
        cron(cron_jobs.sweep_outbox, name=CRON_SWEEP_OUTBOX, second={0, 30}, timeout=120),
        cron(cron_jobs.maintain_partitions, name=CRON_PARTITIONS, hour=3, minute=17, timeout=600),
        cron(cron_jobs.task_retention, name=CRON_RETENTION, hour=4, minute=7, timeout=1800),
        cron(cron_jobs.seal_audit, name=CRON_AUDIT_SEAL, second=set(range(0, 60, 5)), timeout=60),
        cron(cron_jobs.audit_retention, name=CRON_AUDIT_RETENTION, hour=4, minute=37, timeout=1800),
        cron(
            cron_jobs.take_over_expired_tasks,
            name=CRON_TAKE_OVER,
            second={5, 20, 35, 50},
            timeout=60,
        ),
        cron(cron_jobs.prune_idempotency_keys, name=CRON_IDEMPOTENCY, minute=47, timeout=600),
        cron(cron_jobs.finish_deletions, name=CRON_FINISH_DELETIONS, minute=27, timeout=1800),
    ]
    on_startup = startup
    on_shutdown = shutdown
    keep_result = 0  # outcomes are on the tasks
    allow_abort_jobs = False


def worker_kwargs(settings: Settings, **overrides: Any) -> dict[str, Any]:
    if not settings.redis_url:
        raise RuntimeError("WARDEN_REDIS_URL is not set")
    kwargs: dict[str, Any] = {
        "functions": [arq_function(spec, settings) for spec in JOBS],
        "cron_jobs": WorkerSettings.cron_jobs,
        "on_startup": WorkerSettings.on_startup,
        "on_shutdown": WorkerSettings.on_shutdown,
        "keep_result": WorkerSettings.keep_result,
        # The worker waits for Redis itself (with backoff, for as long as it takes).
        "redis_settings": replace(RedisSettings.from_dsn(settings.redis_url), conn_retries=0),
        "queue_name": settings.job_queue_name,
        "health_check_key": f"{settings.job_queue_name}:health-check",
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay,
        "ctx": {"settings": settings},
        "lease_seconds": settings.task_lease_seconds,
        "heartbeat_seconds": settings.task_heartbeat_seconds,
        "reconnect_max_seconds": settings.worker_reconnect_max_seconds,
        "on_redis_back": cron_jobs.redeliver_after_outage,
    }
    kwargs.update(overrides)
    return kwargs


def create_worker(settings: Settings, **overrides: Any) -> ResilientWorker:
    return ResilientWorker(**worker_kwargs(settings, **overrides))


def run(settings: Settings, *, burst: bool = False) -> int:
    """`warden worker`: run until SIGINT/SIGTERM (or, with burst, until the queue is empty)."""
    worker = create_worker(settings, burst=burst)
    worker.run()
    return 1 if burst and worker.jobs_failed else 0
