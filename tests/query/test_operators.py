"""Every operator on every field type, against the same semantics written in Python
(tests/query/model.py), on a dataset with nulls, case, `%`/`_`, unicode and a second workspace.
Integer and boolean fields (the audit log's `status`, `seq`, `sealed`) are covered in
test_audit_fields.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.query.conftest import fetch_all
from tests.query.model import PROVIDER_TYPES, select, ts

PATH = "/ws/{slug}/api/v1/providers"


def _first(cat, field):
    return next(p[field] for p in cat.providers if p[field] is not None)


def _day(cat, delta=0):
    return (ts(cat.providers[0]["created_at"]) + timedelta(days=delta)).date().isoformat()


def _ids(cat, a, b):
    return json.dumps([cat.providers[a]["id"], cat.providers[b]["id"]])


# (field, op, value or value(catalog))
CASES = [
    # string
    ("alias", "eq", "prod"),
    ("alias", "eq", "日本語"),
    ("alias", "eq", "🚀 launch"),
    ("alias", "eq", "back\\slash"),
    ("alias", "eq", "quote'x"),
    ("alias", "eq", "nothing"),
    ("alias", "ne", "prod"),
    ("alias", "in", json.dumps(["prod", "Prod", "nope", "a%b"])),
    ("alias", "in", "[]"),
    ("alias", "startswith", "pro"),
    ("alias", "startswith", "100%"),
    ("alias", "startswith", "100_"),
    ("alias", "startswith", "P"),
    ("alias", "contains", "%"),
    ("alias", "contains", "_"),
    ("alias", "contains", "a%b"),
    ("alias", "contains", "\\"),
    ("alias", "contains", "'"),
    ("alias", "contains", "é"),
    ("alias", "contains", "本"),
    ("alias", "contains", "rod"),
    ("alias", "notcontains", "o"),
    ("alias", "notcontains", "%"),
    ("alias", "exists", "true"),
    ("alias", "exists", "false"),
    ("alias", "gt", "prod"),
    ("alias", "gt", "Z"),
    ("alias", "lt", "a"),
    ("alias", "gte", "prod"),
    ("alias", "lte", "Prod"),
    ("alias", "between", json.dumps(["a", "q"])),
    ("alias", "between", json.dumps(["z", "a"])),
    ("region", "eq", "eu"),
    ("region", "ne", "eu"),
    ("region", "startswith", "eu"),
    ("region", "exists", "false"),
    ("region", "in", json.dumps(["eu", "ap"])),
    ("uid", "startswith", "proj-"),
    ("uid", "contains", ".onmicrosoft."),
    # enum
    ("provider_type", "eq", "aws"),
    ("provider_type", "ne", "aws"),
    ("provider_type", "in", json.dumps(["gcp", "azure"])),
    ("provider_type", "exists", "true"),
    ("provider_type", "exists", "false"),
    # uuid
    ("id", "eq", lambda c: c.providers[3]["id"]),
    ("id", "ne", lambda c: c.providers[3]["id"]),
    ("id", "eq", lambda c: c.other_providers[0]["id"]),
    ("id", "in", lambda c: json.dumps([c.providers[1]["id"], c.other_providers[0]["id"]])),
    ("id", "gt", lambda c: c.providers[5]["id"]),
    ("id", "lt", lambda c: c.providers[5]["id"]),
    ("id", "gte", lambda c: c.providers[5]["id"]),
    ("id", "lte", lambda c: c.providers[5]["id"]),
    ("id", "between", lambda c: _ids(c, 2, 6)),
    ("id", "exists", "true"),
    ("id", "eq", lambda c: c.providers[3]["id"].upper()),
    # timestamp: instants and whole days
    ("created_at", "eq", lambda c: c.providers[4]["created_at"]),
    ("created_at", "ne", lambda c: c.providers[4]["created_at"]),
    ("created_at", "in", lambda c: json.dumps([p["created_at"] for p in c.providers[2:5]])),
    ("created_at", "gt", lambda c: c.providers[4]["created_at"]),
    ("created_at", "lt", lambda c: c.providers[4]["created_at"]),
    ("created_at", "gte", lambda c: c.providers[4]["created_at"]),
    ("created_at", "lte", lambda c: c.providers[4]["created_at"]),
    (
        "created_at",
        "between",
        lambda c: json.dumps([c.providers[2]["created_at"], c.providers[7]["created_at"]]),
    ),
    ("created_at", "eq", _day),
    ("created_at", "ne", _day),
    ("created_at", "gt", _day),
    ("created_at", "gte", _day),
    ("created_at", "lt", _day),
    ("created_at", "lte", _day),
    ("created_at", "lt", lambda c: _day(c, 1)),
    ("created_at", "gt", lambda c: _day(c, -1)),
    ("created_at", "between", lambda c: json.dumps([_day(c), _day(c)])),
    ("created_at", "in", lambda c: json.dumps([_day(c, -1), _day(c)])),
    ("created_at", "exists", "true"),
    ("updated_at", "gte", _day),
    ("created_at", "gt", lambda c: c.providers[4]["created_at"].replace("Z", "+02:00")),
]


@pytest.mark.parametrize(
    "field,op,value", CASES, ids=[f"{f}__{o}#{i}" for i, (f, o, _) in enumerate(CASES)]
)
async def test_operator(field, op, value, catalog, client):
    raw = value(catalog) if callable(value) else value
    key = field if op == "eq" else f"{field}__{op}"
    rows = await fetch_all(
        client, PATH.format(slug=catalog.slug), catalog.owner.headers, {key: raw}, limit=7
    )
    expected = select(catalog.providers, PROVIDER_TYPES, [(field, op, raw)])
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in expected), (key, raw)


async def test_dataset_is_what_the_model_sees(catalog, client):
    """The deleted provider and the other workspace never appear; the rest all do."""
    rows = await fetch_all(client, PATH.format(slug=catalog.slug), catalog.owner.headers)
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in catalog.providers)
    assert {r["id"] for r in rows}.isdisjoint(p["id"] for p in catalog.other_providers)


async def test_terms_combine_with_and(catalog, client):
    params = {"alias__startswith": "pro", "region__exists": "true", "provider_type__ne": "gcp"}
    rows = await fetch_all(client, PATH.format(slug=catalog.slug), catalog.owner.headers, params)
    expected = select(
        catalog.providers,
        PROVIDER_TYPES,
        [
            ("alias", "startswith", "pro"),
            ("region", "exists", "true"),
            ("provider_type", "ne", "gcp"),
        ],
    )
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in expected)
    assert expected, "the case should select something"


async def test_contains_percent_and_underscore_are_literal(catalog, client):
    """`%` and `_` are LIKE wildcards; unescaped, `contains=%` would match every alias."""
    path = PATH.format(slug=catalog.slug)
    for needle, aliases in (("%", {"100%", "a%b"}), ("_", {"100_", "a_b"})):
        rows = await fetch_all(client, path, catalog.owner.headers, {"alias__contains": needle})
        assert {r["alias"] for r in rows} == aliases
    rows = await fetch_all(client, path, catalog.owner.headers, {"alias__startswith": "a_"})
    assert {r["alias"] for r in rows} == {"a_b"}  # not "ab"


async def test_in_list_is_capped(catalog, client):
    path = PATH.format(slug=catalog.slug)
    ok = await client.get(
        path, params={"alias__in": json.dumps(["x"] * 100)}, headers=catalog.owner.headers
    )
    assert ok.status_code == 200
    r = await client.get(
        path, params={"alias__in": json.dumps(["x"] * 101)}, headers=catalog.owner.headers
    )
    assert r.status_code == 400
    assert "'alias__in': takes at most 100 values, got 101" in r.json()["detail"]
    huge = await client.get(
        path, params={"id__in": json.dumps(["x"] * 5000)}, headers=catalog.owner.headers
    )
    assert huge.status_code == 400 and "at most" in huge.json()["detail"]
