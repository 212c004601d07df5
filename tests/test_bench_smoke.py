"""A smoke run of the benchmark harness (`warden bench --quick` with tiny sizes): the real
servers, the real scenarios and the report files, in seconds. Numbers are not checked here,
except the ones that are correctness: no errors, no row of another workspace."""

from __future__ import annotations

import json

from sqlalchemy.engine import make_url

from benchmarks import run


def test_bench_quick_run_writes_the_report(servers, tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_CITUS_URL", raising=False)  # the citus scenario is skipped
    argv = [
        "--quick",
        "--client",
        "python",
        "--results-dir",
        str(tmp_path),
        "--database-url",
        servers.postgres_admin_url,
        "--redis-url",
        servers.redis_url,
        "--workspaces",
        "6",
        "--client-workspaces",
        "3",
        "--clients",
        "6",
        "--rounds",
        "2",
        "--duration",
        "0.5",
        "--warmup",
        "0.3",
        "--connections",
        "2",
        "--rls-iterations",
        "20",
        "--concurrency-duration",
        "1",
        "--scale-sizes",
        "100,1000",
        "--scale-duration",
        "0.5",
        "--ingest-findings",
        "200",
        "--spam-clients",
        "6",
        "--spam-duration",
        "0.5",
    ]
    assert run.main(argv) == 0
    for name in ("latest.md", "latest.json", "latest.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "latest.json").read_text())
    results = {r["key"]: r for r in report["results"]}
    assert set(results) == {
        "throughput",
        "rls",
        "scale",
        "ingest",
        "concurrency",
        "login_spam",
        "citus",
    }
    assert results["citus"]["skipped"]  # no cluster given (--citus-url)
    assert not results["scale"]["skipped"] and not results["ingest"]["skipped"]
    scale = results["scale"]
    assert scale["metrics"]["errors"] == 0
    assert sorted({r["findings"] for r in scale["rows"]})[-1] >= 1000 - 6  # rounding per ws
    assert set(scale["metrics"]["ratios"]) == {"providers list", "findings list"}
    assert all(r["rows"] > 0 for r in scale["rows"] if r["list"] == "providers list")
    ingest = results["ingest"]["metrics"]
    assert ingest["findings"] == 200
    assert ingest["job_findings_per_s"] > 0 and ingest["baseline_findings_per_s"] > 0
    throughput = results["throughput"]["metrics"]
    assert throughput["warden"]["errors"] == 0 and throughput["bare"]["errors"] == 0
    assert throughput["warden"]["rps"] > 0 and throughput["bare"]["rps"] > 0
    concurrency = results["concurrency"]["metrics"]
    assert concurrency["errors"] == 0, concurrency["error_samples"]
    assert concurrency["checked_rows"] > 0 and concurrency["bad_rows"] == 0
    spam = results["login_spam"]["metrics"]
    assert spam["errors"] == 0, spam["error_samples"]
    # Every spam login was answered after a real password check (none refused by a limit).
    assert set(spam["spam_answers"]) == {"401"} and spam["logins_hashed_per_s"] > 0, spam
    assert spam["p50_rest_ms"] > 0 and spam["p50_spam_ms"] > 0 and spam["p50_ratio"] > 0
    assert set(results["rls"]["metrics"]["queries"]) == {
        "scoped list",
        "get by id",
        "filtered list",
        "findings time-range list",
    }
    if make_url(servers.postgres_admin_url).host in ("127.0.0.1", "localhost", None):
        # PostgreSQL on this machine: its backends' CPU time per execution is read.
        for query in results["rls"]["metrics"]["queries"].values():
            assert all(v > 0 for v in query["backend_cpu_us"].values()), query
    markdown = (tmp_path / "latest.md").read_text()
    assert "PostgreSQL" in markdown and "cores" in markdown and "latest.png" in markdown
