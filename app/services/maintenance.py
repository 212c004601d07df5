"""Cross-workspace upkeep run by cron jobs, only through narrow definer functions (no tenant
context, no bypass connection): finding partitions ahead of time, task retention, idempotency
key retention."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from app.db.partitions import DEFAULT_PARTITION, add_months
from app.db.session import Database

log = logging.getLogger("warden.maintenance")

DEFAULT_PARTITION_ROWS = Gauge(
    "warden_finding_default_partition_rows",
    "Findings that fell into the default partition (no monthly partition was ready)",
)


async def ensure_partitions(db: Database, ahead: int) -> dict[str, Any]:
    """This month's finding partition and `ahead` more; report the default partition's rows
    (which a new month's partition takes over when it is created)."""
    first = datetime.now(UTC).date().replace(day=1)
    created = []
    async with db.transaction() as tx:
        for offset in range(ahead + 1):
            rows = await tx.fetch(
                "SELECT warden_create_finding_partition($1) AS name", add_months(first, offset)
            )
            if rows[0]["name"]:
                created.append(rows[0]["name"])
        rows = await tx.fetch("SELECT warden_finding_default_rows() AS n")
        stray = int(rows[0]["n"])
    DEFAULT_PARTITION_ROWS.set(stray)
    if created:
        log.info("created finding partitions %s", ", ".join(created))
    if stray:
        log.warning(
            "%d findings are in %s: a monthly partition was missing when they were imported",
            stray,
            DEFAULT_PARTITION,
        )
    return {"created": created, "default_partition_rows": stray}


async def task_retention(db: Database, keep_days: int, stale_seconds: int) -> dict[str, int]:
    """Delete finished tasks older than `keep_days`; fail tasks whose worker vanished."""
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT warden_expire_stuck_tasks($1) AS n", stale_seconds)
        expired = int(rows[0]["n"])
    pruned = 0
    while True:
        async with db.transaction() as tx:
            rows = await tx.fetch("SELECT warden_prune_tasks($1, 5000) AS n", keep_days)
            batch = int(rows[0]["n"])
        pruned += batch
        if batch < 5000:
            break
    if expired:
        log.warning("%d running tasks had no worker any more and were marked failed", expired)
    return {"pruned": pruned, "expired": expired}


async def prune_idempotency_keys(db: Database) -> int:
    """Delete the stored responses of idempotency keys past their time."""
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT warden_prune_idempotency_keys() AS n")
        return int(rows[0]["n"])
