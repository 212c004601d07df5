"""Refused calls are recorded under the actor, never in the workspace they tried."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from app.db.models.audit import NOBODY
from app.metrics import DENIALS_NOT_STORED
from tests.conftest import make_settings
from tests.helpers import assert_problem, aws_uid, client_for, serve


async def _count(admin_engine, table: str, request_id: str) -> int:
    async with admin_engine.connect() as conn:
        return (
            await conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE request_id = :r"), {"r": request_id}
            )
        ).scalar_one()


async def _denials(client, user):
    r = await client.get("/api/v1/me/denials", headers=user.headers)
    assert r.status_code == 200
    return r.json()["data"]


async def test_an_outsider_writes_nothing_into_the_workspace(api, client, ws, admin_engine):
    outsider = await api.user("outsider")
    p = await api.provider(ws.owner, ws.slug)
    calls = [
        ("GET", f"{ws.base}/providers", None),
        ("GET", f"{ws.base}/providers/{p['id']}", None),
        ("DELETE", f"{ws.base}/providers/{p['id']}", None),
        ("POST", f"{ws.base}/providers", {"provider_type": "aws", "uid": aws_uid()}),
        ("GET", f"{ws.base}/audit", None),
    ]
    ids = []
    for method, path, body in calls:
        rid = uuid.uuid4().hex
        r = await client.request(
            method, path, json=body, headers={**outsider.headers, "x-request-id": rid}
        )
        assert_problem(r, 404)
        assert await _count(admin_engine, "audit_record", rid) == 0
        assert await _count(admin_engine, "audit_denial", rid) == 1
        ids.append(rid)
    mine = await _denials(client, outsider)
    assert [d["request_id"] for d in mine] == ids[::-1]
    assert {d["status"] for d in mine} == {404} and mine[0]["workspace_slug"] == ws.slug
    assert await _denials(client, ws.owner) == []
    listed = await client.get(f"{ws.base}/audit", params={"limit": 200}, headers=ws.owner.headers)
    outsider_id = (await api.me(outsider))["id"]
    assert all(r["user_id"] != outsider_id for r in listed.json()["data"])


async def test_members_lacking_a_permission_are_denied_in_their_own_log(
    api, client, ws, admin_engine
):
    viewer = await api.user("viewer")
    await api.add_member(ws.owner, ws.slug, viewer, "viewer")
    rid = uuid.uuid4().hex
    r = await client.post(
        f"{ws.base}/providers",
        headers={**viewer.headers, "x-request-id": rid},
        json={"provider_type": "aws", "uid": aws_uid()},
    )
    assert_problem(r, 403)
    assert await _count(admin_engine, "audit_record", rid) == 0
    [denial] = await _denials(client, viewer)
    assert denial["status"] == 403 and "provider.create" in denial["reason"]
    assert denial["method"] == "POST" and denial["path"] == f"{ws.base}/providers"
    missing = await client.get(f"{ws.base}/providers/{uuid.uuid4()}", headers=viewer.headers)
    assert_problem(missing, 404)
    assert [d["status"] for d in await _denials(client, viewer)] == [404, 403]


async def test_anonymous_and_forged_callers_are_filed_under_nobody(api, client, ws, admin_engine):
    admin = await api.user("platform")
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE app_user SET is_platform_admin = true WHERE email = :e"),
            {"e": admin.email},
        )
    anonymous, forged = uuid.uuid4().hex, uuid.uuid4().hex
    assert_problem(
        await client.get(f"{ws.base}/providers", headers={"x-request-id": anonymous}), 401
    )
    token = ws.owner.access_token[:-4] + (
        "AAAA" if not ws.owner.access_token.endswith("AAAA") else "BBBB"
    )
    r = await client.get(
        f"{ws.base}/providers", headers={"Authorization": f"Bearer {token}", "x-request-id": forged}
    )
    assert_problem(r, 401)
    async with admin_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT request_id, user_id, status FROM audit_denial WHERE request_id = ANY(:r)"
                ),
                {"r": [anonymous, forged]},
            )
        ).all()
    assert sorted(rows) == sorted([(anonymous, NOBODY, 401), (forged, NOBODY, 401)])
    assert await _denials(client, ws.owner) == []  # a forged token names nobody
    seen = await client.get(
        "/api/v1/platform/denials", params={"limit": 200}, headers=admin.headers
    )
    theirs = {d["request_id"]: d for d in seen.json()["data"]}
    assert {anonymous, forged} <= set(theirs)
    assert theirs[anonymous]["user_id"] is None  # reported as nobody, not as a user
    # a non-admin is refused, and that refusal is their own denial
    r = await client.get("/api/v1/platform/denials", headers=ws.owner.headers)
    assert_problem(r, 403)
    [own] = await _denials(client, ws.owner)
    assert own["path"] == "/api/v1/platform/denials" and own["workspace_slug"] is None


async def test_denial_logs_are_private(api, client, ws):
    a, b = await api.user("a"), await api.user("b")
    await client.get(f"{ws.base}/members", headers=a.headers)
    assert len(await _denials(client, a)) == 1
    assert await _denials(client, b) == []
    r = await client.get(
        "/api/v1/me/denials", params={"status__in": "[401, 403, 404]"}, headers=b.headers
    )
    assert r.json()["data"] == []


async def test_successful_calls_and_validation_errors_are_not_denials(
    api, client, ws, admin_engine
):
    rid = uuid.uuid4().hex
    r = await client.post(
        f"{ws.base}/providers",
        json={"provider_type": "aws", "uid": "x"},
        headers={**ws.owner.headers, "x-request-id": rid},
    )
    assert_problem(r, 422)
    bad = await client.get(
        f"{ws.base}/providers",
        params={"nope": 1},
        headers={**ws.owner.headers, "x-request-id": rid + "b"},
    )
    assert_problem(bad, 400)
    for request_id in (rid, rid + "b"):
        assert await _count(admin_engine, "audit_denial", request_id) == 0
        assert await _count(admin_engine, "audit_record", request_id) == 0
    assert_problem(await client.get("/no/such/route", headers=ws.owner.headers), 404)
    assert await _denials(client, ws.owner) == []


async def test_unstorable_paths_are_still_recorded(api, client, ws, admin_engine):
    r = await client.get(f"{ws.base}/providers/%00x", headers=ws.owner.headers)
    assert_problem(r, 404)
    paths = [d["path"] for d in await _denials(client, ws.owner)]
    assert paths == [f"{ws.base}/providers/\ufffdx"]
    rid = uuid.uuid4().hex
    r = await client.get(
        "/ws/%00bad/api/v1/providers", headers={**ws.owner.headers, "x-request-id": rid}
    )
    assert_problem(r, 404)  # an impossible slug is refused before the caller is looked up
    assert await _count(admin_engine, "audit_denial", rid) == 1


async def test_denials_are_bounded_and_budgeted_per_address(
    api, client, ws, database, servers, settings
):
    """A flood of refused calls cannot grow the log: ~1 KB of path is kept, and past the
    per-address budget a denial is only counted."""
    outsider = await api.user("flooder")
    budgeted = make_settings(
        database,
        servers,
        jwt_secret=settings.jwt_secret,
        redis_key_prefix=f"{settings.redis_key_prefix}:{uuid.uuid4().hex[:8]}",
        denials_per_address_per_minute=3,
    )
    long_id = "x" * 5000
    before = DENIALS_NOT_STORED._value.get()
    async with serve(budgeted, ip="10.9.0.1") as (_, flood):
        for _ in range(6):
            r = await flood.get(f"{ws.base}/providers/{long_id}", headers=outsider.headers)
            assert_problem(r, 404)
    async with serve(budgeted, ip="10.9.0.2") as (_, elsewhere):
        r = await elsewhere.get(f"{ws.base}/providers", headers=outsider.headers)
        assert_problem(r, 404)
    stored = await _denials(client, outsider)
    assert len(stored) == 4, stored  # three from the flooding address, one from elsewhere
    assert all(len(d["path"]) <= 1024 for d in stored), [len(d["path"]) for d in stored]
    assert DENIALS_NOT_STORED._value.get() - before == 3


async def test_the_denial_budget_counts_an_ipv6_network_as_one_address(
    api, client, ws, database, servers, settings
):
    """Each address of an IPv6 /64 is the same caller: moving along it gets no new budget."""
    outsider = await api.user("v6-flooder")
    budgeted = make_settings(
        database,
        servers,
        jwt_secret=settings.jwt_secret,
        redis_key_prefix=f"{settings.redis_key_prefix}:{uuid.uuid4().hex[:8]}",
        denials_per_address_per_minute=3,
    )
    async with serve(budgeted) as (application, _):
        for i in range(6):
            async with client_for(application, f"2001:db8:9:1::{i + 1:x}") as flood:
                r = await flood.get(f"{ws.base}/providers", headers=outsider.headers)
                assert_problem(r, 404)
    assert len(await _denials(client, outsider)) == 3
