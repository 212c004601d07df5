"""The worker process's own /metrics and /healthz, and its JSON task log lines."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.contract.conftest import Live

pytestmark = pytest.mark.e2e


async def test_worker_serves_metrics_and_logs_tasks(live: Live) -> None:
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(live.worker_metrics)
        assert r.status_code == 200, r.text
        health = await c.get(live.worker_metrics.replace("/metrics", "/healthz"))
        assert health.status_code == 200
    text = r.text
    assert 'warden_tasks_total{kind="scan.import",outcome="succeeded"}' in text, text[-3000:]
    assert 'warden_task_duration_seconds_count{kind="scan.import",outcome="succeeded"}' in text
    imported = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("warden_findings_imported_total ")
    )
    assert imported >= 5, imported
    assert 'warden_db_pool_in_use{pool="worker"}' in text and "warden_job_queue_depth" in text
    lines = [
        json.loads(line)
        for line in live.worker_log.read_text().splitlines()
        if line.startswith("{")
    ]
    finished = [line for line in lines if line.get("msg") == "task finished"]
    assert finished, lines[-10:]
    done = finished[0]
    assert done["kind"] == "scan.import" and done["outcome"] == "succeeded", done
    assert done["task_id"] and done["workspace"], done
