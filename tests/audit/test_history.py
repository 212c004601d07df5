"""History of one resource (before/after of changed fields), reading the log (`audit.read`),
field rules on what the log shows, and other workspaces never showing."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.helpers import assert_problem


async def _history(client, ws, kind: str, rid: str, user=None, **params):
    r = await client.get(
        f"{ws.base}/history/{kind}/{rid}", params=params, headers=(user or ws.owner).headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_provider_history(api, client, ws):
    p = await api.provider(ws.owner, ws.slug, alias="prod", region="eu")
    h = ws.owner.headers
    await client.patch(f"{ws.base}/providers/{p['id']}", json={"alias": "staging"}, headers=h)
    await client.get(f"{ws.base}/providers/{p['id']}", headers=h)  # reads are not changes
    await client.patch(f"{ws.base}/providers/{p['id']}", json={"region": "us"}, headers=h)
    await client.delete(f"{ws.base}/providers/{p['id']}", headers=h)
    entries = (await _history(client, ws, "provider", p["id"]))["data"]
    assert [e["action"] for e in entries] == ["create", "update", "update", "delete"]
    created, renamed, moved, deleted = (e["changes"] for e in entries)
    assert created["alias"] == {"before": None, "after": "prod"}
    assert created["uid"] == {"before": None, "after": p["uid"]}
    assert renamed.keys() == {"alias", "updated_at"}
    assert renamed["alias"] == {"before": "prod", "after": "staging"}
    assert moved["region"] == {"before": "eu", "after": "us"} and "alias" not in moved
    assert deleted["alias"] == {"before": "staging", "after": None}
    me = (await api.me(ws.owner))["id"]
    assert all(e["user_id"] == me for e in entries)
    # paged one entry at a time, the differences are the same
    paged, cursor = [], None
    while True:
        page = await _history(
            client, ws, "provider", p["id"], limit=1, **({"cursor": cursor} if cursor else {})
        )
        paged += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["changes"] for e in paged] == [e["changes"] for e in entries]


async def test_member_and_group_history(api, client, ws):
    h = ws.owner.headers
    member = await api.user("member")
    await api.add_member(ws.owner, ws.slug, member, "viewer")
    uid = (await api.me(member))["id"]
    await client.patch(f"{ws.base}/members/{uid}", json={"role": "engineer"}, headers=h)
    entries = (await _history(client, ws, "member", uid))["data"]
    assert [e["action"] for e in entries] == ["create", "update"]
    assert entries[1]["changes"] == {"role": {"before": "viewer", "after": "engineer"}}
    p1, p2 = await api.provider(ws.owner, ws.slug), await api.provider(ws.owner, ws.slug)
    g = await api.group(ws.owner, ws.slug, name="g", provider_ids=[p1["id"]])
    await client.patch(
        f"{ws.base}/provider-groups/{g['id']}",
        json={"provider_ids": [p1["id"], p2["id"]]},
        headers=h,
    )
    entries = (await _history(client, ws, "provider_group", g["id"]))["data"]
    assert entries[1]["changes"]["provider_ids"] == {
        "before": [p1["id"]],
        "after": sorted([p1["id"], p2["id"]]),
    }
    settings = await client.patch(
        f"{ws.base}/settings", json={"audit_retention_days": 30}, headers=h
    )
    entries = (await _history(client, ws, "workspace", settings.json()["id"]))["data"]
    assert entries[-1]["changes"]["audit_retention_days"] == {"before": None, "after": 30}


async def test_reading_the_log_needs_audit_read(api, client, ws):
    engineer = await api.user("engineer")
    await api.add_member(ws.owner, ws.slug, engineer, "engineer")
    p = await api.provider(ws.owner, ws.slug)
    for path in (
        "/audit",
        f"/audit/{p['id']}",
        "/audit/verify",
        "/audit/distinct/action",
        f"/history/provider/{p['id']}",
    ):
        r = await client.get(ws.base + path, headers=engineer.headers)
        assert "audit.read" in assert_problem(r, 403)["detail"], path
    r = await client.post(
        f"{ws.base}/audit/search/action", json=["create"], headers=engineer.headers
    )
    assert_problem(r, 403)


async def test_fields_hidden_by_role_are_hidden_in_the_log(api, client, ws):
    """An auditor role based on `viewer` may not see provider uids: not in bodies, states,
    queries, search values or history either."""
    h = ws.owner.headers
    r = await client.post(
        f"{ws.base}/roles",
        headers=h,
        json={"name": "Auditor", "inherits_from": "viewer", "grants": ["audit.read"]},
    )
    auditor = await api.user("auditor")
    await api.add_member(ws.owner, ws.slug, auditor, r.json()["id"])
    p = await api.provider(ws.owner, ws.slug, alias="a")
    await client.get(f"{ws.base}/providers", params={"uid": p["uid"]}, headers=h)
    await client.post(f"{ws.base}/providers/search/uid", json=[p["uid"]], headers=h)
    listed = await client.get(
        f"{ws.base}/audit", params={"resource_type": "provider"}, headers=auditor.headers
    )
    assert listed.status_code == 200
    assert p["uid"] not in listed.text
    assert len(listed.json()["data"]) == 3
    owner_view = await client.get(
        f"{ws.base}/audit", params={"resource_type": "provider"}, headers=h
    )
    assert p["uid"] in owner_view.text
    history = await _history(client, ws, "provider", p["id"], user=auditor)
    assert "uid" not in history["data"][0]["changes"]
    assert "alias" in history["data"][0]["changes"]


async def test_other_workspaces_never_show_in_audit_history_or_distinct(api, client, ws):
    other = await api.user("other")
    other_slug = await api.workspace(other)
    theirs = await api.provider(other, other_slug, alias="theirs")
    await client.patch(
        f"/ws/{other_slug}/api/v1/providers/{theirs['id']}",
        json={"alias": "changed"},
        headers=other.headers,
    )
    mine = await api.provider(ws.owner, ws.slug, alias="mine")
    h = ws.owner.headers
    my_id, other_id = (await api.me(ws.owner))["id"], (await api.me(other))["id"]
    for field in ("user_id", "resource_id", "path", "request_id"):
        values = (await client.get(f"{ws.base}/audit/distinct/{field}", headers=h)).json()
        assert other_id not in values["data"] and theirs["id"] not in values["data"]
        assert not any(other_slug in str(v) for v in values["data"]), field
    listed = await client.get(f"{ws.base}/audit", params={"limit": 200}, headers=h)
    assert {r["user_id"] for r in listed.json()["data"]} == {my_id}
    found = await client.post(f"{ws.base}/audit/search/resource_id", json=[theirs["id"]], headers=h)
    assert found.json()["data"] == []
    assert (await _history(client, ws, "provider", theirs["id"]))["data"] == []
    r = await client.get(f"{ws.base}/audit/{theirs['id']}", headers=h)
    # only our own look at that id (the history call above) is there, nothing of theirs
    assert [(e["user_id"], e["action"]) for e in r.json()["data"]] == [(my_id, "history")]
    # and the other way round: their reader sees nothing of ours, and cannot read our log
    r = await client.get(
        f"/ws/{other_slug}/api/v1/history/provider/{mine['id']}", headers=other.headers
    )
    assert r.json()["data"] == []
    assert_problem(await client.get(f"{ws.base}/audit", headers=other.headers), 404)
    unknown = await _history(client, ws, "provider", str(uuid.uuid4()))
    assert unknown["data"] == []


async def test_records_about_providers_you_cannot_see_are_hidden(api, client, ws):
    """A reader limited to some providers (row grant by region, or provider-group visibility)
    sees no record, history or distinct value about the others."""
    h = ws.owner.headers
    eu = await api.provider(ws.owner, ws.slug, alias="eu", region="eu")
    us = await api.provider(ws.owner, ws.slug, alias="us", region="us")
    for p in (eu, us):
        await client.patch(f"{ws.base}/providers/{p['id']}", json={"alias": "x"}, headers=h)
    group = await api.group(ws.owner, ws.slug, name="eu-only", provider_ids=[eu["id"]])
    by_region = await client.post(
        f"{ws.base}/roles",
        headers=h,
        json={"name": "Regional auditor", "inherits_from": "viewer", "grants": ["audit.read"]},
    )
    by_group = await client.post(
        f"{ws.base}/roles",
        headers=h,
        json={
            "name": "Group auditor",
            "inherits_from": "viewer",
            "grants": ["audit.read"],
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        },
    )
    regional, grouped = await api.user("regional"), await api.user("grouped")
    await api.add_member(ws.owner, ws.slug, regional, by_region.json()["id"])
    await api.add_member(ws.owner, ws.slug, grouped, by_group.json()["id"])
    rid = (await api.me(regional))["id"]
    r = await client.patch(
        f"{ws.base}/members/{rid}", json={"attributes": {"region": "eu"}}, headers=h
    )
    assert r.status_code == 200
    for reader in (regional, grouped):
        listed = await client.get(
            f"{ws.base}/audit",
            params={"resource_type": "provider", "limit": 200},
            headers=reader.headers,
        )
        seen = {r["resource_id"] for r in listed.json()["data"]}
        assert eu["id"] in seen and us["id"] not in seen
        assert us["uid"] not in listed.text
        assert (await _history(client, ws, "provider", us["id"], user=reader))["data"] == []
        assert len((await _history(client, ws, "provider", eu["id"], user=reader))["data"]) == 2
        ids = await client.get(f"{ws.base}/audit/distinct/resource_id", headers=reader.headers)
        assert us["id"] not in ids.json()["data"]
    owner_view = await client.get(f"{ws.base}/audit/distinct/resource_id", headers=h)
    assert us["id"] in owner_view.json()["data"]


async def test_writes_without_a_body_do_not_blank_the_history(api, client, ws, admin_engine):
    """A write that left no state (here: an answer the hook could not read as a resource) is
    skipped when looking for the previous state."""
    p = await api.provider(ws.owner, ws.slug, alias="one")
    await client.patch(
        f"{ws.base}/providers/{p['id']}", json={"alias": "two"}, headers=ws.owner.headers
    )
    async with admin_engine.begin() as conn:  # make the update look like a body-less write
        await conn.execute(
            text(
                "UPDATE audit_record SET state = NULL WHERE workspace_id = :w "
                "AND resource_id = :p AND action = 'update'"
            ),
            {"w": ws.id, "p": p["id"]},
        )
    await client.patch(
        f"{ws.base}/providers/{p['id']}", json={"alias": "three"}, headers=ws.owner.headers
    )
    entries = (await _history(client, ws, "provider", p["id"]))["data"]
    assert [e["action"] for e in entries] == ["create", "update", "update"]
    assert entries[1]["changes"] == {}
    assert entries[2]["changes"]["alias"] == {"before": "one", "after": "three"}
