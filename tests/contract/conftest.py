"""A live Warden for the contract tests: real `warden serve` and `warden worker` processes on
the test database, and an owner whose workspace holds data of every kind (providers, a group,
a custom role, another member, a scan imported by the worker, its findings, its task)."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.embedded import free_port
from tests.conftest import database, make_settings
from tests.helpers import PASSWORD, aws_uid, report_bytes, sample_report
from tests.live import Proc, env_for, until


@dataclass
class Live:
    base: str
    worker_metrics: str = ""
    worker_log: Any = None
    token: str = ""
    slug: str = ""
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _user(c: httpx.AsyncClient, name: str) -> tuple[str, str, str]:
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    r = await c.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert r.status_code == 201, r.text
    login = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return email, r.json()["id"], login.json()["access_token"]


async def _post(c: httpx.AsyncClient, live: Live, path: str, **kw: Any) -> dict[str, Any]:
    r = await c.post(f"/ws/{live.slug}/api/v1/{path}", headers=live.headers, **kw)
    assert r.status_code in (201, 202), r.text
    body: dict[str, Any] = r.json()
    return body


async def seed(live: Live) -> None:
    """An owner's workspace with data of every kind; `live.ids` names one of each."""
    async with httpx.AsyncClient(base_url=live.base, timeout=30) as c:
        _, owner_id, live.token = await _user(c, "owner")
        member_email, member_id, _ = await _user(c, "member")
        live.slug = f"contract-{uuid.uuid4().hex[:8]}"
        r = await c.post(
            "/api/v1/workspaces", json={"slug": live.slug, "name": "Contract"}, headers=live.headers
        )
        assert r.status_code == 201, r.text
        provider = await _post(
            c, live, "providers", json={"provider_type": "aws", "uid": aws_uid()}
        )
        await _post(c, live, "providers", json={"provider_type": "aws", "uid": aws_uid()})
        group = await _post(
            c, live, "provider-groups", json={"name": "prod", "provider_ids": [provider["id"]]}
        )
        role = await _post(c, live, "roles", json={"name": "auditor", "inherits_from": "viewer"})
        await _post(c, live, "members", json={"email": member_email, "role": "engineer"})
        report = report_bytes(sample_report("aws", provider["uid"]))
        task = await _post(
            c,
            live,
            "scans",
            data={"provider_id": provider["id"]},
            files={"file": ("r.json", report)},
        )

        async def finished() -> dict[str, Any] | None:
            r = await c.get(f"/ws/{live.slug}/api/v1/tasks/{task['id']}", headers=live.headers)
            body: dict[str, Any] = r.json()
            return body if body["state"] not in ("pending", "running") else None

        done = await until(finished, 60, "the import")
        assert done["state"] == "succeeded", done
        findings = await c.get(f"/ws/{live.slug}/api/v1/findings", headers=live.headers)
        live.ids = {
            "owner_id": owner_id,
            "user_id": member_id,
            "provider_id": provider["id"],
            "group_id": group["id"],
            "role_id": role["id"],
            "scan_id": done["resource_id"],
            "task_id": task["id"],
            "finding_id": findings.json()["data"][0]["id"],
            "resource_id": provider["id"],
        }


@pytest.fixture(scope="session")
async def contract_settings(servers: Any) -> AsyncIterator[Any]:
    """A database of its own: the fuzz run creates users, workspaces and providers at random
    (example slugs and uids too), which must not meet the rest of the suite's data."""
    async for db in database.__wrapped__(servers):  # type: ignore[attr-defined]
        yield make_settings(db, servers)


@pytest.fixture(scope="session")
async def live(
    contract_settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    settings = contract_settings
    tmp = tmp_path_factory.mktemp("live")
    metrics_port = free_port()
    # The fuzzer's wrong passwords come from the address its own logins use.
    env = env_for(
        settings,
        WARDEN_WORKER_METRICS_PORT=str(metrics_port),
        WARDEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS="1000000",
    )
    port = free_port()
    api = Proc("api", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp)
    worker = Proc("worker", ["worker"], env, tmp)
    running = Live(
        base=f"http://127.0.0.1:{port}",
        worker_metrics=f"http://127.0.0.1:{metrics_port}/metrics",
        worker_log=worker.log,
    )
    try:
        async with httpx.AsyncClient(base_url=running.base, timeout=10) as c:

            async def ready() -> bool:
                try:
                    return (await c.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(ready, 30, "the API")
        await seed(running)
        yield running
    except BaseException:
        print(api.tail(), worker.tail(), sep="\n")
        raise
    finally:
        api.stop(signal.SIGTERM)
        worker.stop(signal.SIGTERM)
