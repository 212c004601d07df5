"""The demo seed runs through the real API, is idempotent, and shows isolation at work."""

from __future__ import annotations

from app.seed import DEMO_PASSWORD, PLATFORM_ADMIN, seed_demo
from tests.helpers import run_jobs


async def test_seed_twice_then_use_it(settings, client):
    first = await seed_demo(settings)
    second = await seed_demo(settings)
    assert first["workspaces"] == second["workspaces"]
    assert set(first["workspaces"]) == {"acme-prod", "globex"}

    async def token(email):
        r = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    owner = await token("owner@acme.example.com")
    scans = (await client.get("/ws/acme-prod/api/v1/scans", headers=owner)).json()["data"]
    assert len(scans) == 1 and scans[0]["file_name"] == "demo.ocsf.json", scans  # once
    await run_jobs(settings)
    findings = (await client.get("/ws/acme-prod/api/v1/findings", headers=owner)).json()
    assert len(findings["data"]) == 6, findings

    viewer = await token("viewer@acme.example.com")
    r = await client.get("/ws/acme-prod/api/v1/providers", headers=viewer)
    assert len(r.json()["data"]) == 4
    assert (await client.get("/ws/globex/api/v1/providers", headers=viewer)).status_code == 404
    changes = (await client.get("/ws/acme-prod/api/v1/changes", headers=viewer)).json()["data"]
    assert sorted(c["state"] for c in changes) == ["draft", "implemented", "submitted", "submitted"]
    incidents = (await client.get("/ws/acme-prod/api/v1/incidents", headers=viewer)).json()["data"]
    assert [i["status"] for i in incidents] == ["investigating"]
    platform = await token(PLATFORM_ADMIN)
    rows = (await client.get("/api/v1/platform/workspaces", headers=platform)).json()["data"]
    assert {"acme-prod", "globex"} <= {w["slug"] for w in rows}
