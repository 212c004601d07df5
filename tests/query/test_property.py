"""Property: for any combination of filters, any sort and any page size, walking the pages of a
list gives exactly the visible rows a plain Python filter selects, in the order a plain Python
sort gives, without duplicates or gaps."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.query.conftest import fetch_all
from tests.query.model import PROVIDER_TYPES, ordered, select, ts

PATH = "/ws/{slug}/api/v1/providers"
OPS = {
    "string": [
        "eq",
        "ne",
        "in",
        "startswith",
        "contains",
        "notcontains",
        "exists",
        "gt",
        "lt",
        "gte",
        "lte",
        "between",
    ],
    "enum": ["eq", "ne", "in", "exists"],
    "uuid": ["eq", "ne", "in", "exists", "gt", "lt", "gte", "lte", "between"],
    "timestamp": ["eq", "ne", "in", "exists", "gt", "lt", "gte", "lte", "between"],
}
SORTABLE = list(PROVIDER_TYPES)


def _pool(catalog, field: str) -> list[str]:
    values = [p[field] for p in catalog.providers if p[field] is not None]
    kind = PROVIDER_TYPES[field]
    if kind == "string":
        values += [v[:n] for v in values for n in (1, 2)] + ["%", "_", "é", "Z", "~"]
    elif kind == "enum":
        values += ["kubernetes", "iac"]
    elif kind == "uuid":
        values += [p["id"] for p in catalog.other_providers] + [str(uuid.uuid4())]
    elif kind == "timestamp":
        shifted = [
            (ts(v) + timedelta(microseconds=d)).isoformat() for v in values[:3] for d in (-1, 1)
        ]
        days = [(ts(values[0]) + timedelta(days=d)).date().isoformat() for d in (-1, 0, 1)]
        values += shifted + days
    return values


def _value(data, kind: str, op: str, pool: list[str]) -> str:
    one = st.sampled_from(pool)
    if kind == "string":
        one = one | st.text(alphabet="abpro%_éP日🚀'\\ -", max_size=4)
    if op == "exists":
        return data.draw(st.sampled_from(["true", "false"]))
    if op == "in":
        return json.dumps(data.draw(st.lists(one, max_size=4)))
    if op == "between":
        return json.dumps(data.draw(st.lists(one, min_size=2, max_size=2)))
    return data.draw(one)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
async def test_filters_sorts_and_pages_match_python(data, catalog, client):
    terms = []
    fields = st.lists(st.sampled_from(SORTABLE), min_size=1, max_size=3, unique=True)
    for field in data.draw(fields):
        kind = PROVIDER_TYPES[field]
        op = data.draw(st.sampled_from(OPS[kind]))
        terms.append((field, op, _value(data, kind, op, _pool(catalog, field))))
    sort = [
        (f, data.draw(st.booleans()))
        for f in data.draw(st.lists(st.sampled_from(SORTABLE), max_size=2, unique=True))
    ]
    limit = data.draw(st.integers(min_value=1, max_value=8))
    params = [(f if op == "eq" else f"{f}__{op}", v) for f, op, v in terms]
    if sort:
        params.append(("sort", ",".join(("-" if d else "") + f for f, d in sort)))
    rows = await fetch_all(
        client, PATH.format(slug=catalog.slug), catalog.owner.headers, params, limit=limit
    )
    expected = ordered(select(catalog.providers, PROVIDER_TYPES, terms), PROVIDER_TYPES, sort)
    assert [r["id"] for r in rows] == [p["id"] for p in expected], params


@pytest.mark.parametrize("field", SORTABLE)
@pytest.mark.parametrize("desc", [False, True])
async def test_every_sort_pages_without_gaps(field, desc, catalog, client):
    sort = ("-" if desc else "") + field
    rows = await fetch_all(
        client, PATH.format(slug=catalog.slug), catalog.owner.headers, {"sort": sort}, limit=3
    )
    expected = ordered(catalog.providers, PROVIDER_TYPES, [(field, desc)])
    assert [r["id"] for r in rows] == [p["id"] for p in expected]


async def test_two_keys_mixed_directions_with_nulls(catalog, client):
    for sort in (["region", "-alias"], ["-region", "alias"], ["-provider_type", "-region"]):
        keys = [(s.lstrip("-"), s.startswith("-")) for s in sort]
        rows = await fetch_all(
            client,
            PATH.format(slug=catalog.slug),
            catalog.owner.headers,
            {"sort": ",".join(sort)},
            limit=2,
        )
        expected = ordered(catalog.providers, PROVIDER_TYPES, keys)
        assert [r["id"] for r in rows] == [p["id"] for p in expected], sort


async def test_default_page_size_and_cap(catalog, client, settings):
    path = PATH.format(slug=catalog.slug)
    r = await client.get(path, headers=catalog.owner.headers)
    assert len(r.json()["data"]) == min(50, len(catalog.providers))
    r = await client.get(
        path, params={"limit": settings.max_page_size}, headers=catalog.owner.headers
    )
    assert r.status_code == 200
    last = await client.get(
        path, params={"limit": len(catalog.providers)}, headers=catalog.owner.headers
    )
    assert last.json()["next_cursor"] is None  # an exactly full last page has no next page
