"""The database goes away under load: honest 503s, nothing lost, recovery within seconds."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from app.embedded import free_port
from tests.conftest import make_settings
from tests.faults.load import run_load, summary
from tests.helpers import PASSWORD
from tests.live import Proc, env_for, until

pytestmark = pytest.mark.faults


async def _owner_with_workspace(base_url: str) -> tuple[dict[str, str], str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as c:
        email = f"fault-{time.monotonic_ns()}@example.com"
        r = await c.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "F"}
        )
        assert r.status_code == 201, r.text
        token = (
            await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        slug = f"fault-{time.monotonic_ns() % 10**9}"
        r = await c.post("/api/v1/workspaces", json={"slug": slug, "name": "F"}, headers=headers)
        assert r.status_code == 201, r.text
        for n in range(5):
            r = await c.post(
                f"/ws/{slug}/api/v1/providers",
                headers=headers,
                json={"provider_type": "aws", "uid": f"{n:012d}"},
            )
            assert r.status_code == 201, r.text
        return headers, slug


async def _serve(settings, tmp_path, **extra: str) -> tuple[Proc, str]:
    port = free_port()
    api = Proc(
        "api",
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        env_for(settings, **extra),
        tmp_path,
    )
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(base_url=base, timeout=2) as c:
                return (await c.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await until(ready, 30, "the API")
    return api, base


async def test_database_restart_under_read_load(fault_pg, fault_database, servers, tmp_path):
    settings = make_settings(fault_database, servers)
    api, base = await _serve(settings, tmp_path)
    try:
        headers, slug = await _owner_with_workspace(base)
        stop = asyncio.Event()

        async def read(http: httpx.AsyncClient, n: int) -> httpx.Response:
            return await http.get(f"/ws/{slug}/api/v1/providers", headers=headers)

        load = asyncio.create_task(run_load(base, read, clients=20, stop=stop))
        await asyncio.sleep(2)
        down_at = time.monotonic()
        await asyncio.to_thread(fault_pg.stop, "fast")
        await asyncio.sleep(3)
        await asyncio.to_thread(fault_pg.start)
        up_at = time.monotonic()
        await asyncio.sleep(4)
        stop.set()
        outcomes = await load
        print(summary(outcomes), "down at", down_at, "up at", up_at)
        import collections

        tl = collections.defaultdict(collections.Counter)
        for o in outcomes:
            tl[int(o.at)][str(o.status or o.error)] += 1
        for k in sorted(tl):
            print(k, dict(tl[k]))
        for o in outcomes:
            if o.status not in (200,):
                print(
                    o.at,
                    o.status,
                    o.error,
                    o.body[:200],
                    o.headers.get("retry-after"),
                    o.headers.get("x-request-id"),
                )
                break
        print("log bytes", api.log.stat().st_size)
    finally:
        api.stop(signal.SIGTERM)
        print(api.tail())
