"""Generated from the registry: what a member may not see stays unseen on every route.

The routes come from the live app, the tables from the models' declared provider links, the
hidden fields from the field rules, so a resource or route added later is crawled on the day it
is added. Two members are hidden from one provider — by a row grant (region attribute) and by
provider-group visibility — and must get nothing of it (the provider, its scan, its findings,
its import task, the changes and incidents about it, audit records and history about them)
from any route; a viewer, from whom provider uids are hidden, must never receive a uid in any
response, under any name, and cannot filter, sort, search or list on a field that embeds one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.db.base import scoped_entities
from app.security.fields import rules_for
from tests.helpers import (
    Api,
    User,
    api_routes,
    assert_problem,
    list_routes,
    report_bytes,
    run_jobs,
    sample_report,
    upload_scan,
)

MARK = "zzhiddenzz"  # in every human-readable value of the hidden provider's data


@dataclass
class World:
    slug: str
    owner: User
    members: dict[str, User]  # who is hidden from the provider, by what
    viewer: User
    seen: dict[str, list[str]] = field(default_factory=dict)  # resource -> ids a member sees
    hidden: dict[str, list[str]] = field(default_factory=dict)  # resource -> hidden ids
    uids: list[str] = field(default_factory=list)  # every provider uid of the workspace


async def _ids(api: Api, user: User, slug: str, resource: str, **params: Any) -> list[str]:
    r = await api.client.get(
        f"/ws/{slug}/api/v1/{resource}", params={"limit": 200, **params}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    return [row["id"] for row in r.json()["data"]]


@pytest.fixture(scope="module")
async def world(client, settings) -> World:
    api = Api(client)
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    seen_p = await api.provider(owner, slug, region="us", alias="seen")
    hidden_p = await api.provider(owner, slug, region="eu", alias=f"{MARK}-alias")
    group = await api.group(owner, slug, provider_ids=[seen_p["id"]])
    for provider, region in ((seen_p, "us-east-1"), (hidden_p, f"{MARK}-1")):
        report = sample_report("aws", provider["uid"], region=region)
        r = await upload_scan(client, owner, slug, provider["id"], report_bytes(report))
        assert r.status_code == 202, r.text
    await run_jobs(settings)

    async def role(body: dict[str, Any]) -> str:
        r = await client.post(f"/ws/{slug}/api/v1/roles", json=body, headers=owner.headers)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    readers = {"grants": ["audit.read"]}
    by_grant_role = await role({"name": "regional", "inherits_from": "viewer", **readers})
    by_group_role = await role(
        {
            "name": "grouped",
            "inherits_from": "engineer",
            **readers,
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        }
    )
    members = {"row grant": await api.user("grant"), "visibility": await api.user("group")}
    await api.add_member(owner, slug, members["row grant"], by_grant_role)
    await api.add_member(owner, slug, members["visibility"], by_group_role)
    grant_id = (await api.me(members["row grant"]))["id"]
    r = await client.patch(
        f"/ws/{slug}/api/v1/members/{grant_id}",
        json={"attributes": {"region": "us"}},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    viewer = await api.user("viewer")
    await api.add_member(owner, slug, viewer, "viewer")

    w = World(slug, owner, members, viewer)
    for p, bucket in ((seen_p, w.seen), (hidden_p, w.hidden)):
        bucket["providers"] = [p["id"]]
        bucket["scans"] = await _ids(api, owner, slug, "scans", provider_id=p["id"])
        bucket["findings"] = await _ids(api, owner, slug, "findings", provider_id=p["id"])
        bucket["tasks"] = await _ids(api, owner, slug, "tasks", provider_id=p["id"])
        mark = MARK if bucket is w.hidden else "seen"
        for collection, body in (
            ("changes", {"title": f"{mark} change", "description": mark, "risk": "low"}),
            ("incidents", {"title": f"{mark} incident", "severity": "sev2"}),
        ):
            r = await client.post(
                f"/ws/{slug}/api/v1/{collection}",
                json={**body, "provider_id": p["id"]},
                headers=owner.headers,
            )
            assert r.status_code == 201, r.text
            bucket[collection] = [r.json()["id"]]
        assert all(bucket.values()), bucket
    w.uids = [seen_p["uid"], hidden_p["uid"]]
    # The owner works with the hidden provider's data, so the audit log and history hold
    # records about it, and records of lists that name it.
    base = f"/ws/{slug}/api/v1"
    h = w.hidden
    for path in (
        f"providers/{h['providers'][0]}",
        f"scans/{h['scans'][0]}",
        f"findings/{h['findings'][0]}",
        f"tasks/{h['tasks'][0]}",
        f"changes/{h['changes'][0]}",
        f"incidents/{h['incidents'][0]}",
    ):
        assert (await client.get(f"{base}/{path}", headers=owner.headers)).status_code == 200
    r = await client.patch(
        f"{base}/providers/{h['providers'][0]}",
        json={"alias": f"{MARK}-renamed"},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.get(
        f"{base}/findings", params={"provider_id": h["providers"][0]}, headers=owner.headers
    )
    assert r.status_code == 200
    r = await client.patch(
        f"{base}/provider-groups/{group['id']}",
        json={"provider_ids": [seen_p["id"], hidden_p["id"]]},
        headers=owner.headers,
    )
    assert r.status_code == 200
    r = await client.patch(
        f"{base}/provider-groups/{group['id']}",
        json={"provider_ids": [seen_p["id"]]},
        headers=owner.headers,
    )
    assert r.status_code == 200
    return w


def _collection(path: str) -> str:
    parts = path.split("/")
    return parts[parts.index("v1") + 1]


def _requests(app: Any, w: World) -> list[tuple[str, str, Any]]:
    """Every workspace read the app offers (GET routes, and the search POSTs), each path
    parameter filled with every id it can take: the hidden ones and the seen ones."""
    fields = {(r.path, r.method): list(r.resource.fields) for r in list_routes(app) if r.resource}
    ids = {k: w.seen.get(k, []) + w.hidden.get(k, []) for k in {*w.seen, *w.hidden}}
    every_id = [i for values in ids.values() for i in values]
    out: list[tuple[str, str, Any]] = []
    for route in api_routes(app):
        if not route.path.startswith("/ws/{slug}/"):
            continue
        for method in route.methods:
            if method == "GET" or route.path.endswith("/search/{field}"):
                params = re.findall(r"{(\w+)}", route.path)
                choices: list[dict[str, str]] = [{"slug": w.slug}]
                for name in params[1:]:
                    if name == "field":
                        values = fields.get((route.path, method), ["id"])
                    elif name == "resource_type":
                        values = [e.__resource__ for e in scoped_entities()]
                    elif name == "resource_id":
                        values = every_id
                    else:
                        values = ids.get(_collection(route.path), [])
                    choices = [{**c, name: v} for c in choices for v in values]
                for c in choices:
                    path = route.path.format(**c)
                    body = every_id if method == "POST" else None
                    out.append((method, path, body))
    return out


async def _crawl(client, user: User, app: Any, w: World) -> list[tuple[str, str, str]]:
    """(request, status, body text) of every read, following cursors."""
    seen = []
    for method, path, body in _requests(app, w):
        cursor = None
        for _ in range(20):
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            r = await client.request(method, path, json=body, params=params, headers=user.headers)
            assert r.status_code < 500, (path, r.text)
            seen.append((f"{method} {path}", str(r.status_code), r.text))
            cursor = r.json().get("next_cursor") if r.status_code == 200 else None
            if not cursor:
                break
    return seen


@pytest.mark.parametrize("how", ["row grant", "visibility"])
async def test_a_hidden_provider_leaves_no_trace_on_any_route(how, app, client, world):
    member = world.members[how]
    hidden = [i for values in world.hidden.values() for i in values] + [MARK]
    leaks = [
        (request, marker)
        for request, _, text in await _crawl(client, member, app, world)
        for marker in hidden
        if marker in text and marker not in request  # a 404 names the path it was asked for
    ]
    assert leaks == [], leaks[:10]
    # …while what the member may see is all there (the test sees through the same routes).
    for resource, ids in world.seen.items():
        listed = await _ids(Api(client), member, world.slug, resource)
        assert set(ids) <= set(listed), resource
    for resource, ids in world.hidden.items():
        for i in ids[:3]:
            r = await client.get(f"/ws/{world.slug}/api/v1/{resource}/{i}", headers=member.headers)
            assert_problem(r, 404)


async def test_hidden_fields_never_reach_a_viewer(app, client, world):
    hidden_values = world.uids
    leaks = [
        (request, value)
        for request, _, text in await _crawl(client, world.viewer, app, world)
        for value in hidden_values
        if value in text
    ]
    assert leaks == [], leaks[:10]
    # The embedding fields are shown masked, not dropped: the viewer still sees the finding.
    r = await client.get(
        f"/ws/{world.slug}/api/v1/findings/{world.seen['findings'][0]}",
        headers=world.viewer.headers,
    )
    finding = r.json()
    assert "[hidden]" in str(finding["raw"]) and finding["check_id"]


def _unqueryable(resource: str) -> set[str]:
    rule = rules_for(["viewer"]).get(resource)
    return set(rule.exclude | rule.masked) if rule else set()


async def test_hidden_fields_answer_like_unknown_ones(app, client, world):
    """For every list route and every field hidden from the viewer (excluded or masked):
    filter, sort, search and distinct answer exactly as for a field that does not exist."""
    checked = 0
    for route in list_routes(app):
        if not route.path.startswith("/ws/"):
            continue
        for name in _unqueryable(route.resource.name) & set(route.resource.fields):
            base = route.path.format(
                slug=world.slug, field=name, resource_type="provider", resource_id=MARK
            )
            unknown = route.path.format(
                slug=world.slug, field="nope", resource_type="provider", resource_id=MARK
            )
            headers = world.viewer.headers
            if route.kind == "list":
                for params in ({name: "x"}, {f"{name}__contains": "1"}, {"sort": name}):
                    body = assert_problem(await client.get(base, params=params, headers=headers))
                    assert body["status"] == 400 and name not in body["detail"].split(";")[1]
            elif route.kind == "search":
                r = await client.post(base, json=["x"], headers=headers)
                twin = await client.post(unknown, json=["x"], headers=headers)
                assert r.status_code == twin.status_code == 400
            else:
                r = await client.get(base, headers=headers)
                twin = await client.get(unknown, headers=headers)
                assert r.status_code == twin.status_code == 400
            checked += 1
    assert checked >= 8  # provider uid, finding uid/resource_uid/…: the rules are in force
