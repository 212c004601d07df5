"""The database goes away under load (a `warden serve` process against a PostgreSQL of the
test's own): every answer is a 200 or an honest 503 (`Retry-After`, `X-Request-ID`, a problem),
never a 500 or a dropped connection; the log has one line per 503, no tracebacks; the first
requests after the database is back succeed; writes are all or nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import make_settings
from tests.faults.load import Outcome, run_load, summary
from tests.faults.servers import serve_process, sign_up

pytestmark = pytest.mark.faults

DOWN_SECONDS = 2.0
RECOVERY_SECONDS = 5.0  # from the server accepting connections to every answer a 2xx


def _check_honest(outcomes: list[Outcome], ok: set[int]) -> list[Outcome]:
    """Every outcome is an `ok` status or a well-formed 503; return the 503s."""
    assert summary(outcomes), "no requests were made"
    dropped = [f"{o.at:.2f}s {o.error}" for o in outcomes if o.status is None]
    assert not dropped, (summary(outcomes), dropped[:5])
    unavailable = [o for o in outcomes if o.status not in ok]
    odd = [(o.status, o.body[:300]) for o in unavailable if o.status != 503]
    assert not odd, (summary(outcomes), odd[:3])
    for o in unavailable:
        assert o.headers["content-type"].startswith("application/problem+json")
        assert o.headers.get("retry-after") and o.headers.get("x-request-id")
        body = orjson.loads(o.body)
        assert body["status"] == 503 and "unavailable" in body["detail"]
    return unavailable


def _recovery(outcomes: list[Outcome], up_at: float, ok: set[int]) -> float:
    """Seconds from `up_at` until the last non-ok answer (0 when none came after it)."""
    late = [o.at for o in outcomes if o.at > up_at and o.status not in ok]
    return max(late, default=up_at) - up_at


def _log_problems(log: str) -> None:
    assert "Traceback" not in log, log[-3000:]
    assert "Exception in ASGI application" not in log
    assert "MissingGreenlet" not in log


async def _restart_under_reads(
    fault_pg, settings, tmp_path, clients: int, request_timeout: float = 15.0
) -> dict[str, Any]:
    async with serve_process(settings, tmp_path) as (api, base):
        headers, slug = await sign_up(base, providers=5)
        stop = asyncio.Event()

        async def read(http: httpx.AsyncClient, n: int) -> httpx.Response:
            return await http.get(f"/ws/{slug}/api/v1/providers", headers=headers)

        started = time.monotonic()
        load = asyncio.create_task(
            run_load(base, read, clients=clients, stop=stop, request_timeout=request_timeout)
        )
        await asyncio.sleep(2)
        await asyncio.to_thread(fault_pg.stop, "fast")
        down_at = time.monotonic() - started
        await asyncio.sleep(DOWN_SECONDS / 2)
        async with httpx.AsyncClient(base_url=base, timeout=5) as c:
            ready = await c.get("/readyz")
        await asyncio.sleep(DOWN_SECONDS / 2)
        await asyncio.to_thread(fault_pg.start)
        up_at = time.monotonic() - started
        await asyncio.sleep(RECOVERY_SECONDS + 2)
        stop.set()
        outcomes = await load
        return {
            "outcomes": outcomes,
            "ready": ready,
            "down_at": down_at,
            "up_at": up_at,
            "log": api.log.read_text(),
        }


async def test_a_database_restart_under_read_load(fault_pg, fault_database, servers, tmp_path):
    settings = make_settings(fault_database, servers)
    run = await _restart_under_reads(fault_pg, settings, tmp_path, clients=20)
    outcomes = run["outcomes"]
    unavailable = _check_honest(outcomes, {200})
    assert unavailable, "the outage was not seen"
    recovery = _recovery(outcomes, run["up_at"], {200})
    print(f"\n{summary(outcomes)}; recovered {recovery:.2f}s after the database was back")
    assert recovery < RECOVERY_SECONDS
    assert sum(1 for o in outcomes if o.at > run["up_at"] + recovery and o.status == 200) > 20
    ready = run["ready"]
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert (checks["database"], checks["redis"]) == ("unavailable", "ok")
    assert ready.json()["reasons"]["database"]
    log = run["log"]
    _log_problems(log)
    # One concise line per 503: no more warning lines than 503s (plus startup's).
    warnings = [line for line in log.splitlines() if '"logger":"warden.errors"' in line]
    assert len(warnings) <= len(unavailable), warnings[:5]
    assert all('"dependency":"database"' in line for line in warnings)


async def test_a_database_restart_under_200_clients(fault_pg, fault_database, servers, tmp_path):
    """The same with 200 concurrent keep-alive clients (more than the pool's connections)."""
    settings = make_settings(fault_database, servers, db_pool_size=10, db_max_overflow=10)
    # A generous client timeout: 200 clients in this one test process, on a small machine, can
    # be slow to read their answers; a dropped connection is an error here all the same.
    run = await _restart_under_reads(fault_pg, settings, tmp_path, clients=200, request_timeout=60)
    outcomes = run["outcomes"]
    _check_honest(outcomes, {200})
    recovery = _recovery(outcomes, run["up_at"], {200})
    print(f"\n{summary(outcomes)}; recovered {recovery:.2f}s after the database was back")
    late = [(o.at, o.body[:200]) for o in outcomes if o.at > run["up_at"] and o.status != 200]
    assert recovery < RECOVERY_SECONDS, late[-3:]
    _log_problems(run["log"])


async def test_a_write_loop_with_the_database_down(fault_pg, fault_database, servers, tmp_path):
    """Every create answered 2xx is in the database, once; none answered otherwise is."""
    settings = make_settings(fault_database, servers)
    async with serve_process(settings, tmp_path) as (api, base):
        headers, slug = await sign_up(base)
        stop = asyncio.Event()
        sent: dict[int, str] = {}

        async def create(http: httpx.AsyncClient, n: int) -> httpx.Response:
            alias = sent[n] = f"w-{uuid.uuid4().hex}"
            body = {"provider_type": "aws", "uid": f"{n % 10**12:012d}", "alias": alias}
            return await http.post(f"/ws/{slug}/api/v1/providers", json=body, headers=headers)

        outcomes: list[Outcome] = []
        load = asyncio.create_task(run_load(base, create, clients=10, stop=stop, keep=outcomes))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(fault_pg.stop, "fast")
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(fault_pg.start)
        await asyncio.sleep(3)
        stop.set()
        await load
        log = api.log.read_text()
    _check_honest(outcomes, {201})
    engine = create_async_engine(fault_database["admin_url"])
    try:
        async with engine.connect() as conn:
            stored = list(
                (await conn.execute(text("SELECT alias FROM provider WHERE alias LIKE 'w-%'")))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    answered = {sent[o.number]: o.status for o in outcomes}
    created = {alias for alias, status in answered.items() if status == 201}
    refused = {alias for alias, status in answered.items() if status != 201}
    print(f"\n{summary(outcomes)}; {len(stored)} rows")
    assert refused, "the outage was not seen"
    assert len(stored) == len(set(stored))
    assert set(stored) == created  # every 2xx is there; nothing of a 503 is
    assert not refused & set(stored)
    _log_problems(log)


async def test_every_route_answers_503_while_the_database_is_down(
    fault_pg, fault_database, servers, tmp_path
):
    """Each route of the API, called while the database is stopped, answers without it (the
    probes, the docs) or with a 503 — never a 500 or a dropped connection."""
    settings = make_settings(fault_database, servers)
    async with serve_process(settings, tmp_path) as (api, base):
        headers, slug = await sign_up(base)
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            schema = (await c.get("/openapi.json")).json()
            await asyncio.to_thread(fault_pg.stop, "fast")
            try:
                answers = {}
                for path, item in schema["paths"].items():
                    url = _fill(path, slug)
                    for method in item:
                        r = await c.request(method, url, headers=headers, json={})
                        answers[(method.upper(), path)] = r
            finally:
                await asyncio.to_thread(fault_pg.start)
            for _ in range(3):  # the first requests after the restart succeed
                r = await c.get(f"/ws/{slug}/api/v1/providers", headers=headers)
                assert r.status_code == 200, r.text
        log = api.log.read_text()
    statuses = {key: r.status_code for key, r in answers.items()}
    assert 500 not in statuses.values(), statuses
    down = [key for key, status in statuses.items() if status == 503]
    for key in down:
        assert answers[key].headers.get("retry-after"), key
    # Every workspace route needs the database; the others answer 503 too, or refuse the
    # (empty) body before they would need it, or need no database (the permission list).
    workspace = {k: s for k, s in statuses.items() if k[1].startswith("/ws/")}
    assert set(workspace.values()) == {503}, workspace
    others = {k: s for k, s in statuses.items() if k[1].startswith("/api/v1/")}
    assert set(others.values()) <= {503, 422, 200}, {k: s for k, s in others.items() if s != 503}
    assert list(others.values()).count(503) > len(others) // 2, others
    _log_problems(log)


def _fill(path: str, slug: str) -> str:
    values = {"slug": slug, "field": "id", "type": "provider", "resource_type": "provider"}
    out = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            out.append(values.get(part[1:-1], str(uuid.uuid4())))
        else:
            out.append(part)
    return "/".join(out)
