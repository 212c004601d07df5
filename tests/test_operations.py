"""What operators read: metrics (pool, queue, outbox; optionally behind a token), readiness
with the migration head, access log fields, the image's health check target."""

from __future__ import annotations

import json
import logging

import pytest

from app.cli import health_url
from tests.conftest import make_settings
from tests.helpers import serve


async def test_metrics_show_pool_queue_and_outbox(client) -> None:
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    for name in (
        'warden_db_pool_in_use{pool="primary"}',
        'warden_db_pool_idle{pool="primary"}',
        'warden_db_pool_waiting{pool="primary"}',
        "warden_db_pool_wait_seconds_bucket",
        "warden_job_queue_depth",
        "warden_job_queue_oldest_age_seconds",
        "warden_outbox_unsent",
        "warden_outbox_oldest_unsent_age_seconds",
        'warden_metrics_source_up{source="database"} 1.0',
        'warden_metrics_source_up{source="redis"} 1.0',
        "warden_tasks_total",
        "warden_findings_imported_total",
        'warden_http_requests_total{method="GET",route="/healthz",status="200"}',
    ):
        assert name in r.text, name


async def test_metrics_behind_a_token(database, servers) -> None:
    settings = make_settings(database, servers, metrics_token="s3cret-scrape-token")
    async with serve(settings) as (_, c):
        assert (await c.get("/metrics")).status_code == 401
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await c.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
        assert ok.status_code == 200 and "warden_outbox_unsent" in ok.text


async def test_readyz_reports_the_migration_head(client) -> None:
    body = (await client.get("/readyz")).json()
    assert body["checks"]["migrations"] == "ok", body


async def test_access_log_names_route_client_and_agent(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="warden.access"):
        await client.get("/ws/some-slug/api/v1/providers", headers={"User-Agent": "probe/1.0"})
    record = next(r for r in caplog.records if r.name == "warden.access")
    assert record.route == "/ws/{slug}/api/v1/providers"
    assert record.client == "127.0.0.1" and record.user_agent == "probe/1.0"
    assert record.path == "/ws/some-slug/api/v1/providers"
    json.dumps(record.__dict__, default=str)


@pytest.mark.parametrize(
    ("command", "env", "url"),
    [
        (
            ["warden", "serve", "--host", "0.0.0.0", "--port", "8000"],
            {},
            "http://127.0.0.1:8000/healthz",
        ),
        (["/venv/bin/python", "/venv/bin/warden", "serve"], {}, "http://127.0.0.1:8000/healthz"),
        (
            ["warden", "worker"],
            {"WARDEN_WORKER_METRICS_PORT": "9100"},
            "http://127.0.0.1:9100/healthz",
        ),
        (["warden", "worker"], {}, None),
        (["warden", "migrate"], {}, None),
    ],
)
def test_the_health_check_probes_the_service_the_container_runs(command, env, url) -> None:
    assert health_url(command, env) == url
