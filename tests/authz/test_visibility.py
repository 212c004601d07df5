"""Provider-group visibility, enforced in the app layer and in the database."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from app.db.tenant import Visibility, context_statement
from tests.helpers import Api, assert_problem


async def _limited_world(api: Api):
    owner, member = await api.user("owner"), await api.user("limited")
    slug = await api.workspace(owner)
    seen, hidden = await api.provider(owner, slug), await api.provider(owner, slug)
    group = await api.group(owner, slug, provider_ids=[seen["id"]])
    r = await api.client.post(
        f"/ws/{slug}/api/v1/roles",
        json={
            "name": "Team A",
            "inherits_from": "engineer",
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        },
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    await api.add_member(owner, slug, member, r.json()["id"])
    return owner, member, slug, seen, hidden, group, r.json()


async def test_http_layer_shows_only_assigned_groups(api: Api):
    owner, member, slug, seen, hidden, group, role = await _limited_world(api)
    listed = await api.all(member, slug, "providers")
    assert [p["id"] for p in listed] == [seen["id"]]
    assert len(await api.all(owner, slug, "providers")) == 2
    for method, body in (("GET", None), ("PATCH", {"alias": "x"}), ("DELETE", None)):
        r = await api.client.request(
            method, f"/ws/{slug}/api/v1/providers/{hidden['id']}", json=body, headers=member.headers
        )
        assert_problem(r, 404)
    # Group membership lists show only what the member may see, too.
    g = await api.client.get(
        f"/ws/{slug}/api/v1/provider-groups/{group['id']}", headers=member.headers
    )
    assert g.json()["provider_ids"] == [seen["id"]]
    # Giving the group the hidden provider makes it visible on the next request.
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/provider-groups/{group['id']}",
        json={"provider_ids": [seen["id"], hidden["id"]]},
        headers=owner.headers,
    )
    assert r.status_code == 200
    assert len(await api.all(member, slug, "providers")) == 2
    # And taking the role's groups away hides everything.
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/roles/{role['id']}",
        json={"provider_group_ids": []},
        headers=owner.headers,
    )
    assert r.status_code == 200
    assert await api.all(member, slug, "providers") == []


async def test_limited_member_cannot_create_a_provider_it_would_not_see(api: Api):
    owner, member, slug, *_ = await _limited_world(api)
    r = await api.client.post(
        f"/ws/{slug}/api/v1/providers",
        json={"provider_type": "aws", "uid": "424242424242"},
        headers=member.headers,
    )
    # WITH CHECK refuses a row outside the caller's visibility: nothing is written.
    assert_problem(r, 403)
    assert len(await api.all(owner, slug, "providers")) == 2


async def test_database_layer_enforces_visibility(api: Api, runtime_engine):
    owner, member, slug, seen, hidden, *_ = await _limited_world(api)
    ws = uuid.UUID(await api.workspace_id(owner, slug))
    user = uuid.UUID((await api.me(member))["id"])

    async def visible(visibility: Visibility | None) -> set[str]:
        async with runtime_engine.connect() as conn, conn.begin():
            await conn.execute(text("SELECT 1"))
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute(context_statement(ws, user, visibility))
            rows = await conn.execute(text("SELECT id::text FROM provider"))
            return set(rows.scalars())

    assert await visible(Visibility(True)) == {seen["id"], hidden["id"]}
    assert await visible(Visibility(False, (uuid.UUID(seen["id"]),))) == {seen["id"]}
    assert await visible(Visibility(False, ())) == set()
    assert await visible(None) == set()  # no visibility setting at all: fail closed
