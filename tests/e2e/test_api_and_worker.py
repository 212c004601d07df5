"""End to end: real `warden serve` (uvicorn) and `warden worker` processes, on free ports,
against the test database and Redis; a report uploaded over HTTP is imported by the worker."""

from __future__ import annotations

import pathlib
import signal
import uuid

import httpx
import pytest

from app.embedded import free_port
from tests.helpers import PASSWORD, report_bytes, sample_report
from tests.live import Proc, env_for, until

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


async def test_upload_over_http_is_imported_by_the_worker_process(settings, tmp_path):
    env = env_for(settings)
    port = free_port()
    api = Proc("api", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path)
    worker = Proc("worker", ["worker"], env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:

            async def ready():
                try:
                    return (await c.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(ready, 30, "the API")
            email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
            r = await c.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "E2E"}
            )
            assert r.status_code == 201, r.text
            token = (
                await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            slug = f"e2e-{uuid.uuid4().hex[:8]}"
            assert (
                await c.post(
                    "/api/v1/workspaces", json={"slug": slug, "name": "E2E"}, headers=headers
                )
            ).status_code == 201
            provider = (
                await c.post(
                    f"/ws/{slug}/api/v1/providers",
                    headers=headers,
                    json={"provider_type": "aws", "uid": "123456789012"},
                )
            ).json()
            r = await c.post(
                f"/ws/{slug}/api/v1/scans",
                data={"provider_id": provider["id"]},
                headers=headers,
                files={"file": ("r.json", report_bytes(sample_report("aws", provider["uid"])))},
            )
            assert r.status_code == 202, r.text
            location = r.headers["content-location"]

            async def finished():
                task = (await c.get(location, headers=headers)).json()
                return task if task["state"] not in ("pending", "running") else None

            task = await until(finished, 30, "the import")
            assert task["state"] == "succeeded", task
            findings = (await c.get(f"/ws/{slug}/api/v1/findings", headers=headers)).json()
            assert len(findings["data"]) == 5
        # Graceful stops (uvicorn re-raises SIGTERM after its shutdown, hence -15).
        assert api.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in api.log.read_text()
        assert worker.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "shutdown on SIGTERM" in worker.log.read_text()
    except BaseException:
        print(api.tail(), worker.tail(), sep="\n")
        raise
    finally:
        api.stop(signal.SIGKILL)
        worker.stop(signal.SIGKILL)
