"""Privilege-escalation attempts are refused, and removals take effect on the next request."""

from __future__ import annotations

from sqlalchemy import text

from tests.helpers import Api, assert_problem


async def _id(api: Api, user) -> str:
    return str((await api.me(user))["id"])


async def _world(api: Api):
    owner, admin, viewer = (
        await api.user("owner"),
        await api.user("admin"),
        await api.user("viewer"),
    )
    slug = await api.workspace(owner)
    await api.add_member(owner, slug, admin, "admin")
    await api.add_member(owner, slug, viewer, "viewer")
    return owner, admin, viewer, slug


async def test_admin_cannot_promote_anyone_to_owner(api: Api):
    owner, admin, viewer, slug = await _world(api)
    base = f"/ws/{slug}/api/v1/members"
    assert_problem(
        await api.client.patch(
            f"{base}/{await _id(api, admin)}", json={"role": "owner"}, headers=admin.headers
        ),
        403,
    )
    assert_problem(
        await api.client.patch(
            f"{base}/{await _id(api, viewer)}", json={"role": "owner"}, headers=admin.headers
        ),
        403,
    )
    newcomer = await api.user("new")
    assert_problem(
        await api.client.post(
            base, json={"email": newcomer.email, "role": "owner"}, headers=admin.headers
        ),
        403,
    )
    # A custom role inheriting owner is the same escalation.
    role = (
        await api.client.post(
            f"/ws/{slug}/api/v1/roles",
            json={"name": "Almost owner", "inherits_from": "owner"},
            headers=owner.headers,
        )
    ).json()
    assert_problem(
        await api.client.patch(
            f"{base}/{await _id(api, viewer)}", json={"role": role["id"]}, headers=admin.headers
        ),
        403,
    )
    # An admin also cannot demote or remove an owner.
    assert_problem(
        await api.client.patch(
            f"{base}/{await _id(api, owner)}", json={"role": "viewer"}, headers=admin.headers
        ),
        403,
    )
    assert_problem(
        await api.client.delete(f"{base}/{await _id(api, owner)}", headers=admin.headers), 403
    )
    roles = {
        m["user_id"]: m["role"]
        for m in (await api.client.get(base, headers=owner.headers)).json()["data"]
    }
    assert sorted(roles.values()) == ["admin", "owner", "viewer"]


async def test_self_promotion_and_viewer_writes(api: Api):
    owner, admin, viewer, slug = await _world(api)
    base = f"/ws/{slug}/api/v1/members"
    assert_problem(
        await api.client.patch(
            f"{base}/{await _id(api, viewer)}", json={"role": "admin"}, headers=viewer.headers
        ),
        403,
    )
    assert_problem(
        await api.client.patch(
            f"{base}/{await _id(api, viewer)}",
            json={"attributes": {"region": "x"}},
            headers=viewer.headers,
        ),
        403,
    )


async def test_last_owner_cannot_leave_or_be_demoted(api: Api):
    owner, admin, viewer, slug = await _world(api)
    base = f"/ws/{slug}/api/v1/members"
    owner_id = await _id(api, owner)
    assert_problem(
        await api.client.patch(f"{base}/{owner_id}", json={"role": "admin"}, headers=owner.headers),
        409,
    )
    assert_problem(await api.client.delete(f"{base}/{owner_id}", headers=owner.headers), 409)
    # With a second owner, the first may step down.
    r = await api.client.patch(
        f"{base}/{await _id(api, admin)}", json={"role": "owner"}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    r = await api.client.patch(f"{base}/{owner_id}", json={"role": "viewer"}, headers=owner.headers)
    assert r.status_code == 200, r.text


async def test_platform_admin_cannot_be_granted_by_a_workspace(api: Api):
    owner, admin, viewer, slug = await _world(api)
    newcomer = await api.user("new")
    assert_problem(
        await api.client.post(
            f"/ws/{slug}/api/v1/members",
            json={"email": newcomer.email, "role": "platform_admin"},
            headers=owner.headers,
        ),
        403,
    )
    assert_problem(
        await api.client.patch(
            f"/ws/{slug}/api/v1/members/{await _id(api, viewer)}",
            json={"role": "platform_admin"},
            headers=owner.headers,
        ),
        403,
    )
    assert_problem(
        await api.client.post(
            f"/ws/{slug}/api/v1/roles",
            json={"name": "pa", "inherits_from": "platform_admin"},
            headers=owner.headers,
        ),
        403,
    )


async def test_runtime_role_cannot_set_platform_admin(runtime_engine):
    async with runtime_engine.connect() as conn:
        try:
            await conn.execute(text("UPDATE app_user SET is_platform_admin = true"))
            raise AssertionError("runtime role updated is_platform_admin")
        except Exception as exc:  # noqa: BLE001
            assert "permission denied" in str(exc)


async def test_removed_member_loses_access_on_next_request(api: Api):
    owner, admin, viewer, slug = await _world(api)
    url = f"/ws/{slug}/api/v1/providers"
    assert (await api.client.get(url, headers=viewer.headers)).status_code == 200
    r = await api.client.delete(
        f"/ws/{slug}/api/v1/members/{await _id(api, viewer)}", headers=admin.headers
    )
    assert r.status_code == 204
    assert_problem(await api.client.get(url, headers=viewer.headers), 404)
    # Demotion too: the same token, the next request, the new role.
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/members/{await _id(api, admin)}",
        json={"role": "viewer"},
        headers=owner.headers,
    )
    assert r.status_code == 200
    assert_problem(
        await api.client.post(
            url, json={"provider_type": "aws", "uid": "123456789012"}, headers=admin.headers
        ),
        403,
    )
