"""Holding the line: the bench run's comparison with the previous run's numbers."""

from __future__ import annotations

import json
from dataclasses import asdict

from benchmarks import compare
from benchmarks.scenarios.base import Result


def _results(ratio: float, cpu: float, bad_rows: int) -> list[Result]:
    return [
        Result(
            "throughput",
            "t",
            "x",
            metrics={"ratio": ratio, "warden": {"cpu_ms_per_request": cpu, "p99_ms": 10.0}},
        ),
        Result("concurrency", "c", "x", metrics={"errors": 0, "bad_rows": bad_rows, "p99_ms": 5.0}),
        Result("scale", "s", "x", skipped="pending"),
    ]


def test_regressions_beyond_tolerance_are_flagged_and_noise_is_not(tmp_path):
    previous = [asdict(r) for r in _results(ratio=0.30, cpu=3.0, bad_rows=0)]
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"results": previous}))
    loaded = compare.load(path)
    assert loaded is not None

    steady = compare.compare(loaded, _results(ratio=0.29, cpu=3.1, bad_rows=0))
    assert not compare.regressed(steady), steady
    assert {r["metric"] for r in steady} >= {
        "throughput ratio (Warden / bare)",
        "cross-workspace rows",
    }

    slower = compare.compare(loaded, _results(ratio=0.25, cpu=3.6, bad_rows=0))
    verdicts = {r["metric"]: r["verdict"] for r in slower}
    assert verdicts["throughput ratio (Warden / bare)"] == "REGRESSED"
    assert verdicts["Warden server CPU ms/request"] == "REGRESSED"

    leak = compare.compare(loaded, _results(ratio=0.30, cpu=3.0, bad_rows=1))
    assert {r["metric"]: r["verdict"] for r in leak}["cross-workspace rows"] == "REGRESSED"


def test_no_previous_run_means_no_comparison(tmp_path):
    assert compare.load(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("not json")
    assert compare.load(tmp_path / "bad.json") is None
