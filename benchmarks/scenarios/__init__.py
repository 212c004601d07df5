"""One module per measurement of issue 6. A scenario is an object with `key`, `title`, `target`,
`missing(ctx)` (a reason to skip, or None) and `async run(ctx) -> Result`; `run.py` runs the
ones asked for, in this order. Parts 3 (scale) and 4 (ingest) need the findings tables: they
are listed as pending and say so in the report until those tables exist in this tree."""

from __future__ import annotations

from benchmarks.scenarios import concurrency, pending, rls, throughput
from benchmarks.scenarios.base import Context, Result, Scenario

SCENARIOS: tuple[Scenario, ...] = (
    throughput.SCENARIO,
    rls.SCENARIO,
    pending.SCALE,
    pending.INGEST,
    concurrency.SCENARIO,
)

__all__ = ["SCENARIOS", "Context", "Result", "Scenario"]
