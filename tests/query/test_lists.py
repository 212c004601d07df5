"""The one query language on every list: integer and boolean fields (the audit log), the other
lists, path filters beating query parameters, and the OpenAPI description of each list."""

from __future__ import annotations

import json

import pytest

from app.services.audit_chain import seal_pending
from tests.helpers import Api, api_routes, assert_problem
from tests.query.conftest import fetch_all
from tests.query.model import select

AUDIT_TYPES = {
    "id": "uuid",
    "status": "integer",
    "seq": "integer",
    "sealed": "boolean",
    "method": "enum",
    "action": "string",
    "resource_id": "uuid",
    "resource_type": "string",
}


@pytest.fixture(scope="module")
async def trail(client, app, maintenance_db):
    """A workspace whose audit log has 200/201/204 answers, sealed and unsealed records."""
    api = Api(client)
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    providers = [await api.provider(owner, slug, alias=f"p{i}") for i in range(3)]
    await client.get(f"/ws/{slug}/api/v1/providers/{providers[0]['id']}", headers=owner.headers)
    await seal_pending(maintenance_db)
    await client.delete(f"/ws/{slug}/api/v1/providers/{providers[1]['id']}", headers=owner.headers)
    await client.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
    records = await fetch_all(client, f"/ws/{slug}/api/v1/audit", owner.headers)
    return {"owner": owner, "slug": slug, "records": records, "providers": providers}


AUDIT_CASES = [
    ("status", "eq", "201"),
    ("status", "ne", "200"),
    ("status", "in", "[200, 204]"),
    ("status", "in", '["204"]'),
    ("status", "gt", "200"),
    ("status", "lt", "204"),
    ("status", "gte", "201"),
    ("status", "lte", "201"),
    ("status", "between", "[200, 201]"),
    ("status", "exists", "true"),
    ("status", "eq", "+201"),
    ("seq", "eq", "1"),
    ("seq", "gt", "2"),
    ("seq", "exists", "false"),
    ("seq", "ne", "1"),
    ("seq", "between", "[1, 3]"),
    ("seq", "lte", "2"),
    ("seq", "in", "[1, 3, 99]"),
    ("sealed", "eq", "true"),
    ("sealed", "eq", "false"),
    ("sealed", "ne", "true"),
    ("sealed", "in", "[false]"),
    ("sealed", "exists", "true"),
    ("sealed", "eq", "0"),
    ("method", "eq", "DELETE"),
    ("method", "in", '["POST", "DELETE"]'),
    ("method", "ne", "GET"),
    ("action", "eq", "create"),
    ("action", "startswith", "de"),
    ("action", "notcontains", "e"),
    ("resource_id", "exists", "false"),
    ("resource_type", "eq", "provider"),
]


@pytest.mark.parametrize(
    "field,op,value", AUDIT_CASES, ids=[f"{f}__{o}#{i}" for i, (f, o, _) in enumerate(AUDIT_CASES)]
)
async def test_audit_fields(field, op, value, trail, client):
    records = trail["records"]
    last = max(r["id"] for r in records)  # reading the log adds records; compare the snapshot
    key = field if op == "eq" else f"{field}__{op}"
    rows = await fetch_all(
        client,
        f"/ws/{trail['slug']}/api/v1/audit",
        trail["owner"].headers,
        {key: value, "id__lte": last},
        limit=4,
    )
    expected = select(records, AUDIT_TYPES, [(field, op, value)])
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in expected), key
    assert expected or op in ("ne", "exists") or value in ("[1, 3, 99]",), "case selects nothing"


@pytest.mark.parametrize(
    "params,detail",
    [
        ({"status": "abc"}, "'status': 'abc' is not an integer"),
        ({"status": "1.5"}, "'status': '1.5' is not an integer"),
        ({"status": "99999999999999999999"}, "is not an integer"),
        ({"status__in": "[1.5]"}, "1.5 is not an integer"),
        ({"status__in": "[true]"}, "True is not an integer"),
        ({"status__in": "[99999999999999999999]"}, "is out of range"),
        ({"status__contains": "1"}, "operator 'contains' does not apply to 'status' (integer)"),
        ({"sealed": "maybe"}, "'sealed': 'maybe' is not true or false"),
        ({"sealed__gt": "true"}, "operator 'gt' does not apply to 'sealed' (boolean)"),
        ({"sealed__in": "[1]"}, "1 is not true or false"),
        ({"sort": "sealed"}, "unknown field 'sealed'; sortable:"),
        ({"method": "fetch"}, "'method': 'fetch' is not one of: GET, POST, PUT, PATCH, DELETE"),
    ],
)
async def test_audit_field_errors(params, detail, trail, client):
    r = await client.get(
        f"/ws/{trail['slug']}/api/v1/audit", params=params, headers=trail["owner"].headers
    )
    assert detail in assert_problem(r, 400)["detail"]


async def test_path_parameters_beat_query_parameters(trail, client):
    slug, h = trail["slug"], trail["owner"].headers
    target, other = trail["providers"][0]["id"], trail["providers"][2]["id"]
    for params in (
        {"resource_id": other},
        {"resource_id__ne": target},
        {"resource_id__exists": "false"},
        {"resource_id__in": f'["{other}"]'},
    ):
        rows = await fetch_all(client, f"/ws/{slug}/api/v1/audit/{target}", h, params)
        assert rows and {r["resource_id"] for r in rows} == {target}, params
    history = await client.get(
        f"/ws/{slug}/api/v1/history/provider/{target}",
        params={"resource_type": "member", "resource_id": other},
        headers=h,
    )
    assert [e["action"] for e in history.json()["data"]] == ["create"]


async def test_every_list_speaks_the_language(client):
    api = Api(client)
    owner, member = await api.user("owner"), await api.user("zed")
    slug = await api.workspace(owner)
    await api.add_member(owner, slug, member, "viewer")
    h = owner.headers
    base = f"/ws/{slug}/api/v1"
    p = await api.provider(owner, slug, alias="grouped")
    await api.group(owner, slug, name="alpha", provider_ids=[p["id"]])
    await api.group(owner, slug, name="beta")
    for name in ("Release", "Audit"):
        r = await client.post(
            f"{base}/roles", json={"name": name, "inherits_from": "viewer"}, headers=h
        )
        assert r.status_code == 201
    await client.get(f"{base}/providers/{p['id']}x", headers=member.headers)  # a denial
    checks = [
        (f"{base}/members", {"role": "viewer"}, "user_id", 1),
        (f"{base}/members", {"name__startswith": "z", "sort": "-created_at"}, "user_id", 1),
        (f"{base}/roles", {"name__in": '["Audit", "Nope"]'}, "name", 1),
        (f"{base}/roles", {"inherits_from": "viewer", "sort": "-name"}, "name", 2),
        (f"{base}/provider-groups", {"name__contains": "ph"}, "name", 1),
        (f"{base}/audit", {"action": "create", "resource_type": "role"}, "id", 2),
        ("/api/v1/me/events", {"action": "login"}, "id", 1),
    ]
    for path, params, key, count in checks:
        rows = await fetch_all(client, path, h, params, limit=1)
        assert len(rows) == count, (path, params, rows)
    denials = await fetch_all(client, "/api/v1/me/denials", member.headers, {"status": "404"})
    assert len(denials) == 1
    roles = (await client.get(f"{base}/roles", params={"sort": "-name"}, headers=h)).json()
    assert [r["name"] for r in roles["data"]] == ["Release", "Audit"]
    for path, field, values, expected in (
        (f"{base}/members", "role", None, ["owner", "viewer"]),
        (f"{base}/roles", "name", ["Audit"], ["Audit"]),
        (f"{base}/provider-groups", "name", ["beta", "gamma"], ["beta"]),
    ):
        distinct = await client.get(f"{path}/distinct/{field}", headers=h)
        assert distinct.status_code == 200
        if values is None:
            assert distinct.json()["data"] == expected
            continue
        found = await client.post(f"{path}/search/{field}", json=values, headers=h)
        assert [r[field] for r in found.json()["data"]] == expected
    actions = await client.get(f"{base}/audit/distinct/action", headers=h)
    assert {"create", "list", "distinct", "search"} <= set(actions.json()["data"])


async def test_distinct_pages_with_a_cursor(trail, client):
    path = f"/ws/{trail['slug']}/api/v1/providers/distinct/alias"
    h = trail["owner"].headers
    got, cursor = [], None
    while True:
        r = await client.get(
            path, params={"limit": 1, **({"cursor": cursor} if cursor else {})}, headers=h
        )
        body = r.json()
        got += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert got == ["p0", "p2"]  # p1 was deleted


def _query_names(dependant) -> set[str]:
    names = {p.name for p in dependant.query_params}
    for dep in dependant.dependencies:
        names |= _query_names(dep)
    return names


def test_every_list_documents_the_language(app):
    schema = app.openapi()
    lists = [
        r
        for r in api_routes(app)
        if r.endpoint.__name__.startswith("list_") and "sort" in _query_names(r.dependant)
    ]
    assert len(lists) >= 8
    for route in lists:
        operation = schema["paths"][route.path]["get"]
        assert "**Query language**" in operation["description"], route.path
        assert "| Field | Type | Operators | Sortable |" in operation["description"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"limit", "cursor", "sort"} <= names, route.path
    workspace_lists = {r.path for r in lists if r.path.startswith("/ws/")}
    paths = set(schema["paths"])
    for path in workspace_lists - {
        "/ws/{slug}/api/v1/audit/{resource_id}",
        "/ws/{slug}/api/v1/history/{resource_type}/{resource_id}",
    }:
        assert f"{path}/search/{{field}}" in paths and f"{path}/distinct/{{field}}" in paths


def test_json_of_the_docs_is_valid(app):
    json.dumps(app.openapi())
