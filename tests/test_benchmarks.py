"""A tiny run of the ingest benchmark, so it keeps working (its numbers are not asserted)."""

from __future__ import annotations


async def test_ingest_benchmark_smoke(servers):
    from benchmarks.ingest import run

    result = await run(
        300, 100, quiet=True, server_url=servers.postgres_admin_url, redis_url=servers.redis_url
    )
    assert result["findings"] == 300
    assert result["job_findings_per_s"] > 0 and result["baseline_findings_per_s"] > 0
