"""Custom roles: inherit + grants − revokes, edits apply on the next request, bad keys refused."""

from __future__ import annotations

import pytest

from app.security.permissions import BUILTIN_ROLES, effective_permissions
from tests.helpers import Api, assert_problem


async def _role(api: Api, owner, slug, **body):
    r = await api.client.post(f"/ws/{slug}/api/v1/roles", json=body, headers=owner.headers)
    return r


async def _has(api: Api, user, slug, permission):
    r = await api.client.post(
        "/api/v1/me/has-permission",
        json={"workspace": slug, "permission": permission},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_engineer_plus_bulk_approve_minus_provider_delete(api: Api):
    owner, member = await api.user("owner"), await api.user("release")
    slug = await api.workspace(owner)
    r = await _role(
        api,
        owner,
        slug,
        name="Release manager",
        inherits_from="engineer",
        grants=["change.bulk_approve", "provider.delete"],
        revokes=["provider.delete"],
    )
    assert r.status_code == 201, r.text
    role = r.json()
    assert "change.bulk_approve" in role["permissions"]
    assert "provider.delete" not in role["permissions"]  # revokes beat grants
    assert set(role["permissions"]) == (BUILTIN_ROLES["engineer"] | {"change.bulk_approve"}) - {
        "provider.delete"
    }
    await api.add_member(owner, slug, member, role["id"])

    created = await api.provider(member, slug)  # inherited provider.create
    d = await api.client.delete(
        f"/ws/{slug}/api/v1/providers/{created['id']}", headers=member.headers
    )
    assert_problem(d, 403)
    assert (await _has(api, member, slug, "change.bulk_approve")) == {
        "allowed": True,
        "permission": "change.bulk_approve",
        "reason": "custom role 'Release manager' grants it",
    }
    explained = await _has(api, member, slug, "provider.delete")
    assert explained["allowed"] is False and "revokes it" in explained["reason"]
    explained = await _has(api, member, slug, "member.manage")
    assert explained["allowed"] is False and "inherits from 'engineer'" in explained["reason"]

    # Editing the role changes access on the very next request.
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/roles/{role['id']}", json={"revokes": []}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    d = await api.client.delete(
        f"/ws/{slug}/api/v1/providers/{created['id']}", headers=member.headers
    )
    assert d.status_code == 204, d.text
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/roles/{role['id']}",
        json={"inherits_from": "viewer", "grants": []},
        headers=owner.headers,
    )
    assert r.status_code == 200
    c = await api.client.post(
        f"/ws/{slug}/api/v1/providers",
        json={"provider_type": "aws", "uid": "123123123123"},
        headers=member.headers,
    )
    assert_problem(c, 403)


@pytest.mark.parametrize(
    "body,status",
    [
        ({"name": "x", "inherits_from": "engineer", "grants": ["provider.fly"]}, 400),
        ({"name": "x", "inherits_from": "engineer", "revokes": ["nope"]}, 400),
        ({"name": "x", "inherits_from": "superuser"}, 400),
        ({"name": "x", "inherits_from": "platform_admin"}, 403),
        ({"name": "x", "inherits_from": "engineer", "grants": "provider.read"}, 422),
        ({"name": "", "inherits_from": "engineer"}, 422),
        (
            {
                "name": "x",
                "inherits_from": "engineer",
                "workspace_id": "00000000-0000-0000-0000-000000000000",
            },
            422,
        ),
    ],
)
async def test_bad_roles_are_refused(api: Api, body, status):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    assert_problem(await _role(api, owner, slug, **body), status)
    r = await api.client.get(f"/ws/{slug}/api/v1/roles", headers=owner.headers)
    assert r.json()["data"] == []


async def test_role_names_unique_and_roles_in_use_cannot_be_deleted(api: Api):
    owner, member = await api.user("owner"), await api.user("m")
    slug = await api.workspace(owner)
    role = (await _role(api, owner, slug, name="Ops", inherits_from="viewer")).json()
    assert_problem(await _role(api, owner, slug, name="Ops", inherits_from="viewer"), 409)
    await api.add_member(owner, slug, member, role["id"])
    assert_problem(
        await api.client.delete(f"/ws/{slug}/api/v1/roles/{role['id']}", headers=owner.headers), 409
    )
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/members/{(await api.me(member))['id']}",
        json={"role": "viewer"},
        headers=owner.headers,
    )
    assert r.status_code == 200
    r = await api.client.delete(f"/ws/{slug}/api/v1/roles/{role['id']}", headers=owner.headers)
    assert r.status_code == 204


async def test_only_owners_manage_roles(api: Api):
    owner, admin = await api.user("owner"), await api.user("admin")
    slug = await api.workspace(owner)
    await api.add_member(owner, slug, admin, "admin")
    assert_problem(await _role(api, admin, slug, name="x", inherits_from="viewer"), 403)


async def test_another_workspaces_role_cannot_be_assigned(api: Api):
    a, b, m = await api.user("a"), await api.user("b"), await api.user("m")
    ws_a, ws_b = await api.workspace(a), await api.workspace(b)
    role_b = (await _role(api, b, ws_b, name="B role", inherits_from="viewer")).json()
    r = await api.client.post(
        f"/ws/{ws_a}/api/v1/members",
        json={"email": m.email, "role": role_b["id"]},
        headers=a.headers,
    )
    assert_problem(r, 404)
    r = await api.client.get(f"/ws/{ws_a}/api/v1/roles/{role_b['id']}", headers=a.headers)
    assert_problem(r, 404)


def test_resolver_unit():
    assert effective_permissions("viewer") == BUILTIN_ROLES["viewer"]
    assert (
        effective_permissions(None, "viewer", ["audit.read"], ["audit.read"])
        == BUILTIN_ROLES["viewer"]
    )
    assert effective_permissions(None, "viewer", ["made.up"]) == BUILTIN_ROLES["viewer"]
    assert effective_permissions(None, "nonexistent", ["audit.read"]) == {"audit.read"}
    assert effective_permissions("nonexistent") == frozenset()
