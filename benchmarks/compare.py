"""Holding the line: this run's key numbers against a previous run's `latest.json`.

The harness compares with the results folder's previous `latest.json` (or `--baseline PATH`)
before overwriting it; `--fail-on-regression` turns a regression into exit code 1, so a CI job
or a release checklist can hold the line. Ratios and CPU per request are the comparable numbers
across runs; latencies move with the machine's load, hence their wider tolerance.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.scenarios.base import Result

# (label, path into the scenario metrics, better when "higher"/"lower", tolerance)
KEY_METRICS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("throughput ratio (Warden / bare)", ("throughput", "ratio"), "higher", 0.10),
    ("Warden server CPU ms/request", ("throughput", "warden", "cpu_ms_per_request"), "lower", 0.10),
    ("Warden p99 ms", ("throughput", "warden", "p99_ms"), "lower", 0.30),
    ("RLS worst ratio", ("rls", "worst_ratio"), "lower", 0.05),
    (
        "scale: findings list p50 largest/smallest",
        ("scale", "ratios", "findings list"),
        "lower",
        0.3,
    ),
    ("ingest findings/s (job path)", ("ingest", "job_findings_per_s"), "higher", 0.3),
    ("concurrency p99 ms", ("concurrency", "p99_ms"), "lower", 0.30),
    ("concurrency errors", ("concurrency", "errors"), "lower", 0.0),
    ("cross-workspace rows", ("concurrency", "bad_rows"), "lower", 0.0),
    ("login spam: tenant p50 spam/rest", ("login_spam", "p50_ratio"), "lower", 0.5),
)


def load(path: Path) -> list[dict[str, Any]] | None:
    """The results of a previous run, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    results = data.get("results") if isinstance(data, dict) else None
    return results if isinstance(results, list) else None


def _value(results: list[dict[str, Any]], path: tuple[str, ...]) -> float | None:
    by_key = {r.get("key"): r for r in results if not r.get("skipped")}
    node: Any = by_key.get(path[0], {}).get("metrics")
    for part in path[1:]:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return float(node) if isinstance(node, int | float) else None


def compare(previous: list[dict[str, Any]], results: list[Result]) -> list[dict[str, str]]:
    """One row per key metric present in both runs, with a verdict."""
    now = [asdict(r) for r in results]
    rows = []
    for label, path, better, tolerance in KEY_METRICS:
        old, new = _value(previous, path), _value(now, path)
        if old is None or new is None:
            continue
        worse = new < old * (1 - tolerance) if better == "higher" else new > old * (1 + tolerance)
        if tolerance == 0.0:  # counts that must stay zero
            worse = new > old or new > 0
        change = f"{(new - old) / old * 100:+.0f}%" if old else ("0" if new == old else "new")
        rows.append(
            {
                "metric": label,
                "previous": f"{old:.3g}",
                "now": f"{new:.3g}",
                "change": change,
                "verdict": "REGRESSED" if worse else "ok",
            }
        )
    return rows


def regressed(rows: list[dict[str, str]]) -> bool:
    return any(r["verdict"] == "REGRESSED" for r in rows)
