"""API keys: both ways of sending one, the narrowing (workspace, permissions, endpoints),
revocation, user removal and permission loss taking effect on the next request, what a key can
never do, service keys, the last-used stamp, and the secret never stored or logged."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.helpers import Api, User, assert_problem


async def make_key(client: httpx.AsyncClient, user: User, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/me/api-keys", json={"name": "k", **body}, headers=user.headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def as_key(secret: str, header: str = "x-api-key") -> dict[str, str]:
    if header == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    return {"X-API-Key": secret}


@pytest.mark.parametrize("header", ["x-api-key", "bearer"])
async def test_a_key_acts_as_its_user(header: str, api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    key = await make_key(client, owner)
    assert key["secret"].startswith(f"wdn_{key['prefix']}_")
    r = await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(key["secret"], header))
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/me", headers=as_key(key["secret"], header))
    assert r.status_code == 200 and r.json()["email"] == owner.email
    listed = (await client.get("/api/v1/me/api-keys", headers=owner.headers)).json()["data"]
    assert [k["prefix"] for k in listed] == [key["prefix"]]
    assert "secret" not in listed[0] and key["secret"] not in str(listed)


async def test_wrong_or_malformed_keys_are_401(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    key = await make_key(client, owner)
    wrong_secret = key["secret"][:-4] + ("AAAA" if not key["secret"].endswith("AAAA") else "BBBB")
    for value in (wrong_secret, "wdn_short", "wdn_" + "a" * 12 + "_" + "x" * 43):
        r = await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(value))
        assert_problem(r, 401)


async def test_revocation_takes_effect_on_the_next_request(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    key = await make_key(client, owner)
    url = f"/ws/{slug}/api/v1/providers"
    assert (await client.get(url, headers=as_key(key["secret"]))).status_code == 200
    r = await client.delete(f"/api/v1/me/api-keys/{key['id']}", headers=owner.headers)
    assert r.status_code == 204
    assert_problem(await client.get(url, headers=as_key(key["secret"])), 401)
    assert (await client.get("/api/v1/me/api-keys", headers=owner.headers)).json()["data"] == []


async def test_removal_and_lost_permissions_narrow_every_key_at_once(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner, member = await api.user("owner"), await api.user("member")
    slug = await api.workspace(owner)
    await api.add_member(owner, slug, member, "engineer")
    key = await make_key(client, member)
    bound = await make_key(client, member, workspace=slug)
    body = {"provider_type": "aws", "uid": "123456789012"}
    for k in (key, bound):
        r = await client.post(
            f"/ws/{slug}/api/v1/providers", json=body, headers=as_key(k["secret"])
        )
        assert r.status_code in (201, 409), r.text
    member_id = (await api.me(member))["id"]
    r = await client.patch(
        f"/ws/{slug}/api/v1/members/{member_id}", json={"role": "viewer"}, headers=owner.headers
    )
    assert r.status_code == 200
    for k in (key, bound):
        r = await client.post(
            f"/ws/{slug}/api/v1/providers", json=body, headers=as_key(k["secret"])
        )
        assert_problem(r, 403)
        r = await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(k["secret"]))
        assert r.status_code == 200
    r = await client.delete(f"/ws/{slug}/api/v1/members/{member_id}", headers=owner.headers)
    assert r.status_code == 204
    for k in (key, bound):
        r = await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(k["secret"]))
        assert_problem(r, 404)


async def test_an_expired_key_is_refused(api: Api, client: httpx.AsyncClient, admin_engine) -> None:
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    key = await make_key(client, owner, expires_at="2099-01-01T00:00:00Z")
    url = f"/ws/{slug}/api/v1/providers"
    assert (await client.get(url, headers=as_key(key["secret"]))).status_code == 200
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_key SET expires_at = now() - interval '1 second' WHERE id = :i"),
            {"i": key["id"]},
        )
    body = assert_problem(await client.get(url, headers=as_key(key["secret"])), 401)
    assert "expired" in body["detail"]
    r = await client.post(
        "/api/v1/me/api-keys",
        json={"name": "k", "expires_at": "2001-01-01T00:00:00Z"},
        headers=owner.headers,
    )
    assert_problem(r, 422)


async def test_a_key_can_never_manage_the_account_or_access(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    key = as_key((await make_key(client, owner))["secret"])
    other = await api.user("other")
    refused = [
        ("POST", "/api/v1/me/api-keys", {"name": "child"}),
        ("DELETE", "/api/v1/me/api-keys/00000000-0000-0000-0000-000000000000", None),
        ("POST", "/api/v1/auth/password", {"current_password": "x", "new_password": "y" * 12}),
        ("POST", "/api/v1/me/mfa/totp", None),
        ("DELETE", "/api/v1/me/mfa/totp", {"code": "123456"}),
        ("POST", "/api/v1/auth/logout", None),
        ("POST", f"/ws/{slug}/api/v1/members", {"email": other.email, "role": "viewer"}),
        ("POST", f"/ws/{slug}/api/v1/roles", {"name": "r", "inherits_from": "viewer"}),
        ("POST", f"/ws/{slug}/api/v1/service-keys", {"name": "svc"}),
        ("POST", f"/ws/{slug}/api/v1/idp-groups", {"group": "g", "role": "viewer"}),
    ]
    for method, path, body in refused:
        r = await client.request(method, path, json=body, headers=key)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    r = await client.post(
        "/api/v1/me/api-keys",
        json={"name": "k", "permissions": ["provider.read", "member.manage"]},
        headers=owner.headers,
    )
    assert "member.manage" in assert_problem(r, 400)["detail"]


async def test_narrowing_is_explained_the_same_way(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    key = await make_key(
        client,
        owner,
        permissions=["provider.read"],
        permitted_endpoints=[
            {"method": "GET", "path": f"/ws/{slug}/api/v1/providers.*"},
            {"method": "POST", "path": "/api/v1/me/has-permission"},
        ],
    )
    headers = as_key(key["secret"])

    async def ask(**body: Any) -> dict[str, Any]:
        r = await client.post(
            "/api/v1/me/has-permission", json={"workspace": slug, **body}, headers=headers
        )
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    assert (await ask(permission="provider.read"))["allowed"] is True
    answer = await ask(permission="provider.create")
    assert answer["allowed"] is False and "API key" in answer["reason"]
    answer = await ask(method="GET", path=f"/ws/{slug}/api/v1/members")
    assert answer["allowed"] is False and "permitted endpoints" in answer["reason"]
    # ... and the refusal itself names the key's limits.
    body = assert_problem(await client.get(f"/ws/{slug}/api/v1/members", headers=headers), 403)
    assert f"/ws/{slug}/api/v1/providers.*" in body["detail"]


async def test_a_bound_key_stays_in_its_workspace(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user("key-owner")
    a, b = await api.workspace(owner), await api.workspace(owner)
    key = as_key((await make_key(client, owner, workspace=a))["secret"])
    assert (await client.get(f"/ws/{a}/api/v1/providers", headers=key)).status_code == 200
    body = assert_problem(await client.get(f"/ws/{b}/api/v1/providers", headers=key), 403)
    assert "bound to another workspace" in body["detail"]
    r = await client.post(
        "/api/v1/me/has-permission",
        json={"workspace": b, "permission": "provider.read"},
        headers=key,
    )
    assert r.json()["allowed"] is False and "bound to another workspace" in r.json()["reason"]
    r = await client.post(
        "/api/v1/me/api-keys", json={"name": "k", "workspace": "not-mine"}, headers=owner.headers
    )
    assert_problem(r, 404)


async def test_service_keys(api: Api, client: httpx.AsyncClient, admin_engine) -> None:
    owner, admin = await api.user("owner"), await api.user("admin")
    slug, other = await api.workspace(owner), await api.workspace(owner)
    await api.add_member(owner, slug, admin, "admin")
    r = await client.post(
        f"/ws/{slug}/api/v1/service-keys",
        json={
            "name": "scanner",
            "permissions": ["provider.read", "provider.create", "unlimited_visibility"],
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    key = as_key(created["secret"])
    listed = (await client.get(f"/ws/{slug}/api/v1/service-keys", headers=owner.headers)).json()
    assert [k["id"] for k in listed["data"]] == [created["id"]]
    assert created["secret"] not in str(listed)
    r = await client.post(
        f"/ws/{slug}/api/v1/providers",
        json={"provider_type": "aws", "uid": "210987654321"},
        headers=key,
    )
    assert r.status_code == 201, r.text
    assert_problem(await client.get(f"/ws/{slug}/api/v1/members", headers=key), 403)
    assert_problem(await client.get(f"/ws/{other}/api/v1/providers", headers=key), 404)
    assert_problem(await client.get("/api/v1/me", headers=key), 403)
    async with admin_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT user_id, api_key_id, state FROM audit_record "
                    "WHERE resource_id = :p AND action = 'create'"
                ),
                {"p": r.json()["id"]},
            )
        ).one()
        creation = (
            await conn.execute(
                text("SELECT state FROM audit_record WHERE resource_id = :k"), {"k": created["id"]}
            )
        ).scalar_one()
    assert str(row.api_key_id) == created["id"]
    assert str(row.user_id) == (await api.me(admin))["id"]
    assert creation["secret"] == "[redacted]"
    # The maker leaves: the key acts as nobody.
    admin_id = (await api.me(admin))["id"]
    assert (
        await client.delete(f"/ws/{slug}/api/v1/members/{admin_id}", headers=owner.headers)
    ).status_code == 204
    assert_problem(await client.get(f"/ws/{slug}/api/v1/providers", headers=key), 404)


async def test_last_use_is_stamped_at_most_once_a_minute(
    api: Api, client: httpx.AsyncClient, admin_engine
) -> None:
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    key = await make_key(client, owner)

    async def last_used() -> Any:
        async with admin_engine.connect() as conn:
            return (
                await conn.execute(
                    text("SELECT last_used_at FROM api_key WHERE id = :i"), {"i": key["id"]}
                )
            ).scalar_one()

    assert await last_used() is None
    for _ in range(5):
        r = await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(key["secret"]))
        assert r.status_code == 200
    first = await last_used()
    assert first is not None
    for _ in range(5):
        await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(key["secret"]))
    assert await last_used() == first  # no write while the stamp is younger than a minute
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_key SET last_used_at = now() - interval '2 minutes' WHERE id = :i"),
            {"i": key["id"]},
        )
    from app.security import deps

    deps._STAMPED.clear()  # this process stamped it within the minute; another would not know
    await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(key["secret"]))
    assert await last_used() > first


async def test_the_secret_is_never_stored_or_logged(
    api: Api, client: httpx.AsyncClient, admin_engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    owner = await api.user("key-owner")
    slug = await api.workspace(owner)
    created = await make_key(client, owner, workspace=slug)
    r = await client.post(
        f"/ws/{slug}/api/v1/service-keys", json={"name": "svc"}, headers=owner.headers
    )
    service = r.json()
    for secret in (created["secret"], service["secret"]):
        await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(secret))
        await client.get(f"/ws/{slug}/api/v1/providers", headers=as_key(secret, "bearer"))
        await client.get(f"/ws/{slug}/api/v1/nowhere", headers=as_key(secret + "x"))
    secrets_ = [s["secret"] for s in (created, service)]
    tails = [s.split("_", 2)[2] for s in secrets_]  # wdn_<prefix>_<secret> (it may hold "_")
    async with admin_engine.connect() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
                    "AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
                )
            )
        ).scalars()
        for table in list(tables):
            dump = (
                await conn.execute(
                    text(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t")
                )
            ).scalar_one()
            for tail in tails:
                assert tail not in dump, table
                assert tail.encode().hex() not in dump, table
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for tail in tails:
        assert tail not in logged


async def test_keys_are_per_user_rows(api: Api, client: httpx.AsyncClient) -> None:
    a, b = await api.user("a"), await api.user("b")
    key = await make_key(client, a)
    assert (await client.get("/api/v1/me/api-keys", headers=b.headers)).json()["data"] == []
    r = await client.delete(f"/api/v1/me/api-keys/{key['id']}", headers=b.headers)
    assert_problem(r, 404)
    r = await client.get("/api/v1/me", headers=as_key(key["secret"]))
    assert r.json()["email"] == a.email
