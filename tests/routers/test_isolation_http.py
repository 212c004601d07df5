"""Tenant isolation over HTTP: outsiders get 404 (never 403) and change nothing; ids and
workspace ids from another workspace cannot be smuggled in; roles get 403 on what they lack.

"Nothing changed" is always checked by reading everything back as the rightful owner.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import Api, User, assert_problem, aws_uid, without_volatile


@dataclass
class Tenant:
    owner: User
    slug: str
    id: str
    provider: dict[str, Any]
    group: dict[str, Any]


@dataclass
class World:
    a: Tenant
    b: Tenant
    stranger: User  # a member of no workspace at all


async def _tenant(api: Api, name: str) -> Tenant:
    owner = await api.user(f"{name}-owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug, alias=f"{name}-prod", region="eu")
    group = await api.group(owner, slug, provider_ids=[provider["id"]])
    return Tenant(owner, slug, await api.workspace_id(owner, slug), provider, group)


async def _world(api: Api) -> World:
    return World(await _tenant(api, "a"), await _tenant(api, "b"), await api.user("stranger"))


@pytest.fixture(scope="module")
async def world(client: httpx.AsyncClient) -> World:
    """Shared by the tests that must not change anything (each asserts that it did not)."""
    return await _world(Api(client))


@pytest.fixture
async def fresh(api: Api) -> World:
    return await _world(api)


async def snapshot(api: Api, tenant: Tenant) -> dict[str, Any]:
    """Everything a workspace holds that these routes can touch, as its owner sees it."""
    members = await api.client.get(
        f"/ws/{tenant.slug}/api/v1/members", headers=tenant.owner.headers
    )
    assert members.status_code == 200, members.text
    return {
        "providers": await api.all(tenant.owner, tenant.slug, "providers"),
        "provider-groups": await api.all(tenant.owner, tenant.slug, "provider-groups"),
        "members": members.json()["data"],
    }


def routes(
    slug: str, provider_id: str, group_id: str, email: str, member_id: str | None = None
) -> list[tuple[str, str, Any]]:
    """Every provider, provider-group and member route, with a body that would be valid.
    With `member_id`, also the routes on that member (its removal last)."""
    base = f"/ws/{slug}/api/v1"
    by_member = (
        [
            ("GET", f"{base}/members/{member_id}", None),
            ("PATCH", f"{base}/members/{member_id}", {"attributes": {"region": "eu"}}),
            ("DELETE", f"{base}/members/{member_id}", None),
        ]
        if member_id
        else []
    )
    return (
        by_member[:2]
        + [
            ("GET", f"{base}/providers", None),
            ("POST", f"{base}/providers", {"provider_type": "aws", "uid": aws_uid(), "alias": "x"}),
            ("GET", f"{base}/providers/{provider_id}", None),
            ("PATCH", f"{base}/providers/{provider_id}", {"alias": "pwned", "region": "us"}),
            ("DELETE", f"{base}/providers/{provider_id}", None),
            ("GET", f"{base}/provider-groups", None),
            ("POST", f"{base}/provider-groups", {"name": "planted", "provider_ids": []}),
            ("GET", f"{base}/provider-groups/{group_id}", None),
            ("PATCH", f"{base}/provider-groups/{group_id}", {"name": "pwned", "provider_ids": []}),
            ("DELETE", f"{base}/provider-groups/{group_id}", None),
            ("GET", f"{base}/members", None),
            ("POST", f"{base}/members", {"email": email, "role": "owner"}),
        ]
        + by_member[2:]
    )


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, user: User
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=user.headers)


# Outsiders


async def test_owner_can_use_every_route(api: Api, fresh: World) -> None:
    """Control for the outsider tests: the same requests work for the workspace's owner."""
    b = fresh.b
    expected = {"GET": 200, "POST": 201, "PATCH": 200, "DELETE": 204}
    helper = await _member(api, b, "viewer")
    for method, path, body in routes(
        b.slug, b.provider["id"], b.group["id"], fresh.a.owner.email, helper.id
    ):
        if path.endswith("/members") and method == "POST":
            body = {**body, "role": "viewer"}
        r = await call(api.client, method, path, body, b.owner)
        assert r.status_code == expected[method], (method, path, r.text)


@pytest.mark.parametrize("who", ["member of A", "stranger"])
async def test_outsiders_get_404_on_every_route_and_change_nothing(
    who: str, api: Api, world: World
) -> None:
    a, b = world.a, world.b
    outsider = a.owner if who == "member of A" else world.stranger
    before = await snapshot(api, b)
    missing_slug = f"no-such-{secrets.token_hex(4)}"
    for (method, path, body), (_, twin, twin_body) in zip(
        routes(b.slug, b.provider["id"], b.group["id"], outsider.email, b.owner.id),
        routes(missing_slug, b.provider["id"], b.group["id"], outsider.email, b.owner.id),
        strict=True,
    ):
        r = await call(api.client, method, path, body, outsider)
        problem = assert_problem(r, 404)
        # Indistinguishable from a workspace that does not exist.
        ghost = assert_problem(await call(api.client, method, twin, twin_body, outsider), 404)
        assert without_volatile(problem) == without_volatile(ghost), (method, path)
        # Even a body the route would refuse does not reveal the workspace.
        if body is not None:
            bad = await call(api.client, method, path, {"nonsense": True}, outsider)
            assert_problem(bad, 404)
    assert await snapshot(api, b) == before


async def test_another_workspaces_ids_through_my_own_slug_are_not_found(
    api: Api, world: World
) -> None:
    a, b = world.a, world.b
    before_a, before_b = await snapshot(api, a), await snapshot(api, b)
    ghost_id = str(uuid.uuid4())
    bodies = {
        "providers": {"alias": "pwned"},
        "provider-groups": {"name": "pwned"},
        "members": {"role": "viewer"},
    }
    b_owner = {"id": b.owner.id}
    for resource, theirs in (
        ("providers", b.provider),
        ("provider-groups", b.group),
        ("members", b_owner),
    ):
        body = bodies[resource]
        for method in ("GET", "PATCH", "DELETE"):
            sent = body if method == "PATCH" else None
            path = f"/ws/{a.slug}/api/v1/{resource}/{theirs['id']}"
            problem = assert_problem(await call(api.client, method, path, sent, a.owner), 404)
            ghost_path = f"/ws/{a.slug}/api/v1/{resource}/{ghost_id}"
            ghost = assert_problem(await call(api.client, method, ghost_path, sent, a.owner), 404)
            assert without_volatile(problem) == without_volatile(ghost), (method, path)
        # And B's lists do not show through A's slug.
        listed = await api.client.get(f"/ws/{a.slug}/api/v1/{resource}", headers=a.owner.headers)
        assert listed.status_code == 200, listed.text
        assert theirs["id"] not in listed.text
    assert await snapshot(api, a) == before_a
    assert await snapshot(api, b) == before_b


async def test_workspace_list_shows_only_my_workspaces(api: Api, world: World) -> None:
    r = await api.client.get("/api/v1/workspaces", headers=world.a.owner.headers)
    assert r.status_code == 200, r.text
    assert [w["slug"] for w in r.json()["data"]] == [world.a.slug]
    r = await api.client.get("/api/v1/workspaces", headers=world.stranger.headers)
    assert r.status_code == 200 and r.json()["data"] == [], r.text


# Smuggling another workspace into a body


async def test_workspace_id_in_a_body_is_refused_and_nothing_is_written(
    api: Api, world: World
) -> None:
    a, b = world.a, world.b
    before_a, before_b = await snapshot(api, a), await snapshot(api, b)
    uid = aws_uid()
    base = f"/ws/{a.slug}/api/v1"
    attempts: list[tuple[str, str, dict[str, Any]]] = []
    for ws_id in (b.id, a.id):
        attempts += [
            (
                "POST",
                f"{base}/providers",
                {"provider_type": "aws", "uid": uid, "workspace_id": ws_id},
            ),
            (
                "PATCH",
                f"{base}/providers/{a.provider['id']}",
                {"alias": "moved", "workspace_id": ws_id},
            ),
            ("POST", f"{base}/provider-groups", {"name": "smuggled", "workspace_id": ws_id}),
            (
                "PATCH",
                f"{base}/provider-groups/{a.group['id']}",
                {"name": "moved", "workspace_id": ws_id},
            ),
            (
                "POST",
                f"{base}/members",
                {"email": world.stranger.email, "role": "viewer", "workspace_id": ws_id},
            ),
        ]
    attempts += [
        ("POST", f"{base}/providers", {"provider_type": "aws", "uid": uid, "id": b.provider["id"]}),
        ("PATCH", f"{base}/providers/{a.provider['id']}", {"id": b.provider["id"]}),
        ("POST", f"{base}/provider-groups", {"name": "smuggled", "id": b.group["id"]}),
        ("POST", f"{base}/providers", {"provider_type": "aws", "uid": uid, "deleted_at": None}),
        ("PATCH", f"{base}/providers/{a.provider['id']}", {"uid": aws_uid()}),
        ("PATCH", f"{base}/providers/{a.provider['id']}", {"provider_type": "gcp"}),
    ]
    for method, path, body in attempts:
        r = await call(api.client, method, path, body, a.owner)
        assert 400 <= r.status_code < 500, (method, path, body, r.text)
        assert_problem(r)
    assert await snapshot(api, a) == before_a
    assert await snapshot(api, b) == before_b


async def test_group_cannot_reference_another_workspaces_provider(api: Api, world: World) -> None:
    a, b = world.a, world.b
    before_a, before_b = await snapshot(api, a), await snapshot(api, b)
    groups = f"/ws/{a.slug}/api/v1/provider-groups"
    theirs, ghost = b.provider["id"], str(uuid.uuid4())

    create = await api.client.post(
        groups, json={"name": "cross", "provider_ids": [theirs]}, headers=a.owner.headers
    )
    assert 400 <= create.status_code < 500, create.text
    problem = assert_problem(create)
    # Another workspace's provider looks exactly like one that does not exist.
    unknown = await api.client.post(
        groups, json={"name": "cross", "provider_ids": [ghost]}, headers=a.owner.headers
    )
    other = assert_problem(unknown, create.status_code)
    assert without_volatile(problem) == {
        k: (v.replace(ghost, theirs) if isinstance(v, str) else v)
        for k, v in without_volatile(other).items()
    }
    mixed = await api.client.post(
        groups,
        json={"name": "cross", "provider_ids": [a.provider["id"], theirs]},
        headers=a.owner.headers,
    )
    assert_problem(mixed, create.status_code)
    for body in (
        {"provider_ids": [a.provider["id"], theirs]},
        {"provider_ids": [theirs]},
        # The rename must not survive the refused member change (one transaction).
        {"name": "renamed", "provider_ids": [theirs]},
    ):
        r = await api.client.patch(f"{groups}/{a.group['id']}", json=body, headers=a.owner.headers)
        assert_problem(r, create.status_code)
    after_a = await snapshot(api, a)
    assert after_a == before_a
    group = next(g for g in after_a["provider-groups"] if g["id"] == a.group["id"])
    assert group["provider_ids"] == [a.provider["id"]]
    assert await snapshot(api, b) == before_b


# Roles inside one workspace


async def _member(api: Api, tenant: Tenant, role: str) -> User:
    user = await api.user(role)
    await api.add_member(tenant.owner, tenant.slug, user, role)
    return user


def _writes(tenant: Tenant, email: str) -> list[tuple[str, str, Any]]:
    return [
        r
        for r in routes(tenant.slug, tenant.provider["id"], tenant.group["id"], email)
        if r[0] != "GET"
    ]


async def test_viewer_reads_but_every_write_is_forbidden(api: Api, fresh: World) -> None:
    a = fresh.a
    viewer = await _member(api, a, "viewer")
    reads = [r for r in routes(a.slug, a.provider["id"], a.group["id"], "") if r[0] == "GET"]
    for method, path, _ in reads:
        r = await call(api.client, method, path, None, viewer)
        assert r.status_code == 200, (path, r.text)
    listed = await api.all(viewer, a.slug, "providers")
    assert [p["id"] for p in listed] == [a.provider["id"]]

    before = await snapshot(api, a)
    for method, path, body in _writes(a, fresh.stranger.email):
        if body and body.get("role") == "owner":
            body = {**body, "role": "viewer"}
        r = await call(api.client, method, path, body, viewer)
        problem = assert_problem(r, 403)
        assert problem["type"].endswith("/forbidden"), problem
    assert await snapshot(api, a) == before


async def test_engineer_manages_providers_but_not_groups_or_members(api: Api, fresh: World) -> None:
    a = fresh.a
    engineer = await _member(api, a, "engineer")
    base = f"/ws/{a.slug}/api/v1"
    created = await api.provider(engineer, a.slug, alias="eng")
    r = await api.client.patch(
        f"{base}/providers/{created['id']}", json={"alias": "eng2"}, headers=engineer.headers
    )
    assert r.status_code == 200 and r.json()["alias"] == "eng2", r.text
    r = await api.client.delete(f"{base}/providers/{created['id']}", headers=engineer.headers)
    assert r.status_code == 204, r.text

    before = await snapshot(api, a)
    forbidden = [
        ("POST", f"{base}/members", {"email": fresh.stranger.email, "role": "viewer"}),
        ("POST", f"{base}/provider-groups", {"name": "eng-group"}),
        ("PATCH", f"{base}/provider-groups/{a.group['id']}", {"name": "eng-renamed"}),
        ("DELETE", f"{base}/provider-groups/{a.group['id']}", None),
    ]
    for method, path, body in forbidden:
        assert_problem(await call(api.client, method, path, body, engineer), 403)
    assert await snapshot(api, a) == before


async def test_admin_adds_members_but_never_owners(api: Api, fresh: World) -> None:
    a = fresh.a
    admin = await _member(api, a, "admin")
    members = f"/ws/{a.slug}/api/v1/members"
    newcomer, colleague = await api.user("newcomer"), await api.user("colleague")

    r = await api.client.post(
        members, json={"email": newcomer.email, "role": "viewer"}, headers=admin.headers
    )
    assert r.status_code == 201 and r.json()["role"] == "viewer", r.text
    # The new member really is one now.
    r = await api.client.get(f"/ws/{a.slug}/api/v1/providers", headers=newcomer.headers)
    assert r.status_code == 200, r.text
    r = await api.client.post(
        members, json={"email": colleague.email, "role": "admin"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text

    before = await snapshot(api, a)
    outsider = await api.user("would-be-owner")
    for role in ("owner", "platform_admin"):
        r = await api.client.post(
            members, json={"email": outsider.email, "role": role}, headers=admin.headers
        )
        assert_problem(r, 403)
    assert_problem(
        await api.client.post(
            members, json={"email": outsider.email, "role": "root"}, headers=admin.headers
        ),
        400,
    )
    assert_problem(
        await api.client.post(
            members, json={"email": newcomer.email, "role": "admin"}, headers=admin.headers
        ),
        409,
    )
    assert_problem(
        await api.client.post(
            members,
            json={"email": f"nobody-{secrets.token_hex(4)}@example.com", "role": "viewer"},
            headers=admin.headers,
        ),
        404,
    )
    assert await snapshot(api, a) == before
    r = await api.client.get(f"/ws/{a.slug}/api/v1/providers", headers=outsider.headers)
    assert_problem(r, 404)


async def test_nobody_grants_platform_admin_but_an_owner_makes_owners(
    api: Api, fresh: World
) -> None:
    a = fresh.a
    members = f"/ws/{a.slug}/api/v1/members"
    candidate = await api.user("candidate")
    before = await snapshot(api, a)
    for role in ("platform_admin", "PLATFORM_ADMIN", " platform_admin "):
        r = await api.client.post(
            members, json={"email": candidate.email, "role": role}, headers=a.owner.headers
        )
        assert 400 <= r.status_code < 500, (role, r.text)
        assert_problem(r)
    assert await snapshot(api, a) == before
    r = await api.client.post(
        members, json={"email": candidate.email, "role": "owner"}, headers=a.owner.headers
    )
    assert r.status_code == 201 and r.json()["role"] == "owner", r.text


async def test_removed_member_is_an_outsider_from_the_next_request(api: Api, fresh: World) -> None:
    a = fresh.a
    admin, viewer = await _member(api, a, "admin"), await _member(api, a, "viewer")
    members = f"/ws/{a.slug}/api/v1/members"
    providers = f"/ws/{a.slug}/api/v1/providers"
    assert (await api.client.get(providers, headers=viewer.headers)).status_code == 200

    # Members without member.manage cannot remove anyone; outsiders cannot even see them.
    before = await snapshot(api, a)
    assert_problem(await api.client.delete(f"{members}/{admin.id}", headers=viewer.headers), 403)
    for outsider in (fresh.b.owner, fresh.stranger):
        for target in (viewer.id, a.owner.id):
            r = await api.client.delete(f"{members}/{target}", headers=outsider.headers)
            assert_problem(r, 404)
    # An admin cannot remove or demote an owner.
    assert_problem(await api.client.delete(f"{members}/{a.owner.id}", headers=admin.headers), 403)
    r = await api.client.patch(
        f"{members}/{a.owner.id}", json={"role": "viewer"}, headers=admin.headers
    )
    assert_problem(r, 403)
    r = await api.client.patch(
        f"{members}/{viewer.id}", json={"role": "owner"}, headers=admin.headers
    )
    assert_problem(r, 403)
    # The last owner cannot leave.
    r = await api.client.delete(f"{members}/{a.owner.id}", headers=a.owner.headers)
    assert 400 <= r.status_code < 500, r.text
    assert_problem(r)
    assert await snapshot(api, a) == before

    r = await api.client.delete(f"{members}/{viewer.id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    for method, path, body in routes(a.slug, a.provider["id"], a.group["id"], viewer.email):
        assert_problem(await call(api.client, method, path, body, viewer), 404)
    r = await api.client.get("/api/v1/workspaces", headers=viewer.headers)
    assert r.status_code == 200 and r.json()["data"] == [], r.text
    assert viewer.id not in {m["user_id"] for m in (await snapshot(api, a))["members"]}
    assert_problem(await api.client.delete(f"{members}/{viewer.id}", headers=admin.headers), 404)
