"""One module per benchmark scenario. A scenario is an object with `key`, `title`, `target`,
`missing(ctx)` (a reason to skip, or None) and `async run(ctx) -> Result`; `run.py` runs the
ones asked for, in this order."""

from __future__ import annotations

from benchmarks.scenarios import citus, concurrency, ingest, login_spam, rls, scale, throughput
from benchmarks.scenarios.base import Context, Result, Scenario

SCENARIOS: tuple[Scenario, ...] = (
    throughput.SCENARIO,
    rls.SCENARIO,
    scale.SCENARIO,
    ingest.SCENARIO,
    concurrency.SCENARIO,
    login_spam.SCENARIO,
    citus.SCENARIO,
)

__all__ = ["SCENARIOS", "Context", "Result", "Scenario"]
