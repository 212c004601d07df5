"""Cross-workspace upkeep run by cron jobs, only through narrow definer functions (no tenant
context, no bypass connection): finding partitions ahead of time, task retention."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.partitions import DEFAULT_PARTITION, add_months

log = logging.getLogger("warden.maintenance")

DEFAULT_PARTITION_ROWS = Gauge(
    "warden_finding_default_partition_rows",
    "Findings that fell into the default partition (no monthly partition was ready)",
)


async def ensure_partitions(engine: AsyncEngine, ahead: int) -> dict[str, Any]:
    """This month's finding partition and `ahead` more; report the default partition's rows
    (which a new month's partition takes over when it is created)."""
    first = datetime.now(UTC).date().replace(day=1)
    created = []
    async with engine.begin() as conn:
        for offset in range(ahead + 1):
            name = (
                await conn.execute(
                    text("SELECT warden_create_finding_partition(:month)"),
                    {"month": add_months(first, offset)},
                )
            ).scalar()
            if name:
                created.append(name)
        stray = int((await conn.execute(text("SELECT warden_finding_default_rows()"))).scalar_one())
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


async def task_retention(engine: AsyncEngine, keep_days: int, stale_seconds: int) -> dict[str, int]:
    """Delete finished tasks older than `keep_days`; fail tasks whose worker vanished."""
    async with engine.begin() as conn:
        expired = int(
            (
                await conn.execute(
                    text("SELECT warden_expire_stuck_tasks(:s)"), {"s": stale_seconds}
                )
            ).scalar_one()
        )
    pruned = 0
    while True:
        async with engine.begin() as conn:
            batch = int(
                (
                    await conn.execute(
                        text("SELECT warden_prune_tasks(:d, 5000)"), {"d": keep_days}
                    )
                ).scalar_one()
            )
        pruned += batch
        if batch < 5000:
            break
    if expired:
        log.warning("%d running tasks had no worker any more and were marked failed", expired)
    return {"pruned": pruned, "expired": expired}
