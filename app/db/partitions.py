"""UUIDv7 ids for partitioned tables, and the monthly partition bounds built from them.

Invariant: a partition bound is the UUIDv7 of an instant with every random bit zeroed (version
7 and the RFC 9562 variant kept). PostgreSQL compares uuids bytewise, so every UUIDv7 generated
at or after that instant sorts at or above the bound: `finding` is range-partitioned on `id`,
and a time range turns into an id range that prunes partitions. The SQL twin of `floor_uuid7`
lives in migration 0003 (`warden_create_finding_partition`); a test pins that both agree.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, date, datetime

_VERSION = 0x7 << 76
_VARIANT = 0x2 << 62
_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1

FINDING_TABLE = "finding"
DEFAULT_PARTITION = "finding_default"


def uuid7_at(ms: int) -> uuid.UUID:
    """A random UUIDv7 for the millisecond `ms` (not bumped ahead like `uuid6.uuid7`, which
    drifts into the future when a bulk import makes thousands of ids per millisecond)."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | _VERSION | ((rand >> 62) & _RAND_A) << 64 | _VARIANT | (rand & _RAND_B)
    return uuid.UUID(int=value)


def new_uuid7() -> uuid.UUID:
    return uuid7_at(time.time_ns() // 1_000_000)


def floor_uuid7(instant: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of `instant` (random bits zeroed): a partition or filter bound."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    ms = int(instant.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | _VERSION | _VARIANT)


def uuid7_time(value: uuid.UUID) -> datetime:
    """When a UUIDv7 was made (millisecond precision)."""
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[uuid.UUID, uuid.UUID]:
    start = month_start(month)
    end = add_months(start, 1)
    as_dt = [datetime(d.year, d.month, 1, tzinfo=UTC) for d in (start, end)]
    return floor_uuid7(as_dt[0]), floor_uuid7(as_dt[1])


def partition_name(month: date) -> str:
    return f"{FINDING_TABLE}_p{month.year:04d}_{month.month:02d}"
