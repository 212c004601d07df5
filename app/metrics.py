"""Prometheus metrics beyond the request counters: the database pool, the job queue, the
outbox, tasks and imports; rendered for `/metrics` (the API's and the worker's).

Cheap on the request path by design: the pool's sizes are read when scraped (a collector over
the pools in use), only a request that had to wait for a connection observes its wait, and the
queue and outbox are asked at scrape time, not kept up to date.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.unavailable import log_failure

log = logging.getLogger("warden.metrics")

POOL_WAIT = Histogram(
    "warden_db_pool_wait_seconds",
    "Time a caller waited for a pooled database connection (only callers that waited)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge("warden_job_queue_depth", "Jobs waiting in the arq queue")
QUEUE_AGE = Gauge("warden_job_queue_oldest_age_seconds", "Age of the oldest queued job")
OUTBOX_UNSENT = Gauge("warden_outbox_unsent", "Outbox rows not yet handed to Redis")
OUTBOX_AGE = Gauge("warden_outbox_oldest_unsent_age_seconds", "Age of the oldest unsent row")
SOURCE_UP = Gauge("warden_metrics_source_up", "Whether a scrape-time source answered", ["source"])
TASKS = Counter(
    "warden_tasks_total", "Task deliveries finished, by kind and outcome", ["kind", "outcome"]
)
TASK_SECONDS = Histogram(
    "warden_task_duration_seconds",
    "Task run time by kind and outcome",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600),
)
FINDINGS_IMPORTED = Counter("warden_findings_imported_total", "Findings imported by scans")
UNAVAILABLE = Counter(
    "warden_dependency_unavailable_total",
    "Requests answered 503 because a dependency was unavailable",
    ["dependency", "reason"],
)
READY = Gauge(
    "warden_dependency_ready", "1 when the dependency answered the last /readyz", ["dependency"]
)
DENIALS_NOT_STORED = Counter(
    "warden_denials_not_stored_total",
    "Refused calls counted but not stored: their client address was over its denial rate",
)
TAKEOVERS = Counter(
    "warden_task_takeovers_total", "Running tasks taken over after their lease expired", ["job"]
)


class _Pools(Collector):
    """Connections in use, idle and waited for, per pool, read when scraped."""

    def __init__(self) -> None:
        self.pools: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily(
            "warden_db_pool_in_use", "Connections checked out", labels=["pool"]
        )
        idle = GaugeMetricFamily(
            "warden_db_pool_idle", "Connections idle in the pool", labels=["pool"]
        )
        waiting = GaugeMetricFamily(
            "warden_db_pool_waiting", "Callers waiting for a connection", labels=["pool"]
        )
        size = GaugeMetricFamily("warden_db_pool_size", "Configured pool size", labels=["pool"])
        totals: dict[str, list[float]] = {}
        for pool, name in list(self.pools.items()):
            row = totals.setdefault(name, [0, 0, 0, 0])
            row[0] += pool.checkedout()
            row[1] += pool.checkedin()
            row[2] += pool.waiting() if hasattr(pool, "waiting") else 0
            row[3] += pool.size()
        for name, (used, free, waits, configured) in sorted(totals.items()):
            in_use.add_metric([name], used)
            idle.add_metric([name], free)
            waiting.add_metric([name], waits)
            size.add_metric([name], configured)
        yield from (in_use, idle, waiting, size)


POOLS = _Pools()
REGISTRY.register(POOLS)


def watch_pool(engine: Any, name: str) -> None:
    """Report this engine's pool (as `name`) while it lives."""
    POOLS.pools[engine.sync_engine.pool] = name


async def refresh(db: Any, redis: Any, queue_name: str) -> None:
    """Ask the queue (Redis) and the outbox (database) for their backlog, now."""
    try:
        depth = await redis.zcard(queue_name)
        oldest = await redis.zrange(queue_name, 0, 0, withscores=True)
        QUEUE_DEPTH.set(depth)
        age = time.time() - oldest[0][1] / 1000 if oldest else 0.0
        QUEUE_AGE.set(max(age, 0.0))
        SOURCE_UP.labels("redis").set(1)
    except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
        log_failure(log, "metrics: the job queue did not answer", exc)
        SOURCE_UP.labels("redis").set(0)
    try:
        async with db.transaction() as tx:
            row = (
                await tx.fetch("SELECT unsent, oldest_unsent_seconds FROM warden_outbox_stats()")
            )[0]
        OUTBOX_UNSENT.set(row[0])
        OUTBOX_AGE.set(row[1])
        SOURCE_UP.labels("database").set(1)
    except Exception as exc:  # noqa: BLE001
        log_failure(log, "metrics: the outbox could not be read", exc)
        SOURCE_UP.labels("database").set(0)


def authorized(token: str | None, authorization: str | None) -> bool:
    """Without a configured token anyone may scrape; with one, `Bearer <token>` is needed."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def render() -> tuple[bytes, str]:
    """The exposition (all processes' values when `PROMETHEUS_MULTIPROC_DIR` is set)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        registry.register(POOLS)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
