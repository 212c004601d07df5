"""`Idempotency-Key` on POST routes: a retry replays the first response and does nothing twice;
the same key for another request is refused; a concurrent retry waits for the first; only
successful responses are kept; keys are per user and workspace; expired keys are pruned."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from app.services import maintenance
from tests.conftest import make_settings
from tests.helpers import Api, assert_problem, aws_uid, report_bytes, sample_report, serve
from tests.live import until

KEY = "Idempotency-Key"


def keyed(user, key: str) -> dict[str, str]:
    return {**user.headers, KEY: key}


async def _count(admin_engine, sql: str, **params) -> int:
    async with admin_engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def test_a_retry_replays_the_first_response_and_creates_nothing(api, client, admin_engine):
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    body = {"provider_type": "aws", "uid": aws_uid(), "alias": "once"}
    first = await client.post(f"/ws/{slug}/api/v1/providers", json=body, headers=keyed(owner, "k1"))
    assert first.status_code == 201 and KEY.lower() not in first.headers
    assert "idempotent-replayed" not in first.headers
    # The same body with its keys in another order and other spacing is the same request.
    again = await client.post(
        f"/ws/{slug}/api/v1/providers",
        content=json.dumps(dict(reversed(body.items())), separators=(" , ", " :  ")),
        headers={**keyed(owner, "k1"), "content-type": "application/json"},
    )
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    providers = await api.all(owner, slug, "providers")
    assert [p["id"] for p in providers] == [first.json()["id"]]
    # The replay is not a second call: one audit record of the create.
    creates = await _count(
        admin_engine,
        "SELECT count(*) FROM audit_record WHERE resource_id = :r AND action = 'create'",
        r=first.json()["id"],
    )
    assert creates == 1


async def test_the_same_key_for_another_request_is_refused(api, client):
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    url = f"/ws/{slug}/api/v1/providers"
    r = await client.post(
        url, json={"provider_type": "aws", "uid": aws_uid()}, headers=keyed(owner, "k")
    )
    assert r.status_code == 201
    other = await client.post(
        url, json={"provider_type": "aws", "uid": aws_uid()}, headers=keyed(owner, "k")
    )
    problem = assert_problem(other, 422)
    assert problem["type"].endswith("idempotency-key-reused")
    assert problem["errors"] == [
        {"loc": ["header", KEY], "msg": problem["detail"], "type": "idempotency_key_reused"}
    ]
    elsewhere = await client.post(
        f"/ws/{slug}/api/v1/provider-groups", json={"name": "g"}, headers=keyed(owner, "k")
    )
    assert_problem(elsewhere, 422)
    assert len(await api.all(owner, slug, "providers")) == 1
    assert await api.all(owner, slug, "provider-groups") == []


async def test_keys_are_per_user_and_per_workspace(api, client):
    owner, other = await api.user("a"), await api.user("b")
    slug_a, slug_b = await api.workspace(owner), await api.workspace(owner)
    await api.add_member(owner, slug_a, other, "admin")
    # Another body each time: a shared key would answer 422 (or replay), not create.
    for n, (user, slug) in enumerate(((owner, slug_a), (owner, slug_b), (other, slug_a))):
        r = await client.post(
            f"/ws/{slug}/api/v1/provider-groups",
            json={"name": f"g-{n}"},
            headers=keyed(user, "shared"),
        )
        assert r.status_code == 201, r.text
        assert "idempotent-replayed" not in r.headers
    assert len(await api.all(owner, slug_a, "provider-groups")) == 2
    assert len(await api.all(owner, slug_b, "provider-groups")) == 1


async def test_a_failed_request_keeps_no_key(api, client):
    """Only what committed is stored: a 4xx (validation, conflict) leaves the key free, and
    the corrected request with the same key runs."""
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    url = f"/ws/{slug}/api/v1/providers"
    taken = await api.provider(owner, slug)
    bad = await client.post(url, json={"provider_type": "aws"}, headers=keyed(owner, "k"))
    assert_problem(bad, 422)
    dup = await client.post(
        url, json={"provider_type": "aws", "uid": taken["uid"]}, headers=keyed(owner, "k")
    )
    assert_problem(dup, 409)
    dup_again = await client.post(
        url, json={"provider_type": "aws", "uid": taken["uid"]}, headers=keyed(owner, "k")
    )
    assert_problem(dup_again, 409)
    assert "idempotent-replayed" not in dup_again.headers
    fixed = await client.post(
        url, json={"provider_type": "aws", "uid": aws_uid()}, headers=keyed(owner, "k")
    )
    assert fixed.status_code == 201


async def test_an_upload_is_replayed_with_its_task(api, client, admin_engine):
    """Multipart: another boundary is the same request; the retry gets the same task."""
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    report = report_bytes(sample_report("aws", provider["uid"]))
    answers = []
    for _ in range(2):
        answers.append(
            await client.post(
                f"/ws/{slug}/api/v1/scans",
                data={"provider_id": provider["id"]},
                files={"file": ("r.json", report, "application/json")},
                headers=keyed(owner, "upload-1"),
            )
        )
    first, second = answers
    assert first.status_code == second.status_code == 202
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["content-location"] == first.headers["content-location"]
    scans = await _count(
        admin_engine,
        "SELECT count(*) FROM scan s JOIN workspace w ON w.id = s.workspace_id WHERE w.slug = :s",
        s=slug,
    )
    assert scans == 1
    other = await client.post(
        f"/ws/{slug}/api/v1/scans",
        data={"provider_id": provider["id"]},
        files={"file": ("r.json", report + b" ", "application/json")},
        headers=keyed(owner, "upload-1"),
    )
    assert_problem(other, 422)


async def test_the_callers_own_routes_take_keys_too(api, client):
    owner = await api.user("idem")
    slug = f"idem-{uuid.uuid4().hex[:8]}"
    answers = [
        await client.post(
            "/api/v1/workspaces",
            json={"slug": slug, "name": "Once"},
            headers=keyed(owner, "ws-1"),
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[1].headers["idempotent-replayed"] == "true"
    assert answers[1].json() == answers[0].json()


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "two words"])
async def test_a_malformed_key_is_refused(api, client, key):
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    r = await client.post(
        f"/ws/{slug}/api/v1/provider-groups",
        json={"name": "g"},
        headers={**owner.headers, KEY: key.encode()},
    )
    assert_problem(r, 400)
    assert await api.all(owner, slug, "provider-groups") == []


async def _hold_provider_table(admin_engine, ready: asyncio.Event, release: asyncio.Event):
    """Block every INSERT into `provider` until `release` (an admin's table lock)."""
    async with admin_engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text("LOCK TABLE provider IN EXCLUSIVE MODE"))
            ready.set()
            await release.wait()


async def _waiting_on_provider(admin_engine) -> bool:
    async with admin_engine.connect() as conn:
        n = await conn.execute(
            text(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'provider' AND NOT l.granted"
            )
        )
        return bool(n.scalar_one())


async def test_a_concurrent_retry_waits_for_the_first_and_replays_it(api, client, admin_engine):
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    body = {"provider_type": "aws", "uid": aws_uid()}
    ready, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_provider_table(admin_engine, ready, release))
    await ready.wait()
    url = f"/ws/{slug}/api/v1/providers"
    first = asyncio.create_task(client.post(url, json=body, headers=keyed(owner, "same")))
    await until(lambda: _waiting_on_provider(admin_engine), 10, "the first to hold the key")
    second = asyncio.create_task(client.post(url, json=body, headers=keyed(owner, "same")))
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting for the first, not answered 409 or replayed early
    release.set()
    await holder
    a, b = await first, await second
    assert (a.status_code, b.status_code) == (201, 201)
    assert b.headers["idempotent-replayed"] == "true" and b.json() == a.json()
    assert len(await api.all(owner, slug, "providers")) == 1


async def test_a_retry_that_waits_too_long_gets_409(database, servers, admin_engine):
    settings = make_settings(database, servers, idempotency_wait_seconds=0.2)
    async with serve(settings) as (_, client):
        api = Api(client)
        owner = await api.user("idem")
        slug = await api.workspace(owner)
        body = {"provider_type": "aws", "uid": aws_uid()}
        ready, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(_hold_provider_table(admin_engine, ready, release))
        await ready.wait()
        url = f"/ws/{slug}/api/v1/providers"
        first = asyncio.create_task(client.post(url, json=body, headers=keyed(owner, "slow")))
        await until(lambda: _waiting_on_provider(admin_engine), 10, "the first to hold the key")
        second = await client.post(url, json=body, headers=keyed(owner, "slow"))
        problem = assert_problem(second, 409)
        assert problem["type"].endswith("idempotency-key-in-use")
        assert second.headers["retry-after"] == "1"
        release.set()
        await holder
        assert (await first).status_code == 201
        assert len(await api.all(owner, slug, "providers")) == 1


async def test_an_expired_key_is_free_again_and_pruned(api, client, admin_engine, maintenance_db):
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    url = f"/ws/{slug}/api/v1/provider-groups"
    assert (await client.post(url, json={"name": "a"}, headers=keyed(owner, "old"))).is_success
    async with admin_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_key SET expires_at = now() - interval '1 second' WHERE key = 'old'"
            )
        )
    fresh = await client.post(url, json={"name": "b"}, headers=keyed(owner, "old"))
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    async with admin_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_key SET expires_at = now() - interval '1 second' WHERE key = 'old'"
            )
        )
    assert await maintenance.prune_idempotency_keys(maintenance_db) >= 1
    assert await _count(admin_engine, "SELECT count(*) FROM idempotency_key WHERE key = 'old'") == 0


def test_the_header_is_documented_on_post_routes_that_take_it(app):
    schema = app.openapi()
    takes = {
        (path, method)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if any(p.get("name") == KEY for p in op.get("parameters", []))
    }
    assert ("/ws/{slug}/api/v1/providers", "post") in takes
    assert ("/ws/{slug}/api/v1/scans", "post") in takes
    assert ("/api/v1/workspaces", "post") in takes
    assert ("/ws/{slug}/api/v1/providers", "get") not in takes
    assert ("/api/v1/auth/login", "post") not in takes  # no user to keep it for
    assert all(method == "post" for _, method in takes)


async def test_any_json_body_can_be_fingerprinted(api, client):
    """Integers beyond 64 bits, lone surrogates, huge floats: the key's fingerprint takes any
    JSON the request can carry (the route then answers as it would without a key)."""
    owner = await api.user("idem")
    slug = await api.workspace(owner)
    body = '[18446744073709551616, "\\ud800", 1e400, {"b": 1, "a": [null]}]'
    answers = [
        await client.post(
            f"/ws/{slug}/api/v1/providers/search/uid",
            content=body,
            headers={**keyed(owner, "odd-json"), "content-type": "application/json"},
        )
        for _ in range(2)
    ]
    assert {a.status_code for a in answers} < {400, 422}, [a.text for a in answers]


def test_a_route_whose_answer_holds_a_secret_takes_no_keys():
    """Derived from the response model: a key, a token or recovery codes are shown once and
    never stored, so such a route refuses the header (and does not document it)."""
    from fastapi import APIRouter, Depends

    from app.schemas.common import Output
    from app.security import idempotency
    from app.security.audit import AuditedRoute

    class KeyCreated(Output):
        id: int
        secret: str

    class Codes(Output):
        recovery_codes: list[str]

    class Plain(Output):
        id: int

    async def session() -> Any:
        yield None

    session.claims_idempotency_keys = True  # type: ignore[attr-defined]
    router = APIRouter(route_class=AuditedRoute)
    for path, model in (("/key", KeyCreated), ("/codes", Codes), ("/plain", Plain)):

        async def create_thing(_: Any = Depends(session)) -> dict[str, Any]:
            return {}

        router.add_api_route(path, create_thing, methods=["POST"], response_model=model)
    routes = {r.path: r for r in router.routes}
    for path in ("/key", "/codes"):
        assert not idempotency.takes_part(routes[path]), path
        assert routes[path].openapi_extra == {"x-idempotency": False}
    assert idempotency.takes_part(routes["/plain"])
    assert routes["/plain"].openapi_extra["parameters"] == [idempotency.PARAMETER]
