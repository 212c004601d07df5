"""Typed filter values stay in range: every value of every filter of every list (found from the
live app's routes) answers 4xx or 2xx, never 5xx; out-of-range values are a 400 that names the
parameter."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.query.filters import OPERATORS
from tests.helpers import Api, ListRoute, assert_problem, list_routes


@pytest.fixture(scope="module")
async def world(client) -> dict[str, Any]:
    api = Api(client)
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug, alias="prod", region="eu")
    return {"owner": owner, "slug": slug, "provider": provider}


def _path(route: ListRoute, world: dict[str, Any], field: str | None = None) -> str:
    return route.path.format(
        slug=world["slug"],
        field=field or "id",
        resource_type="provider",
        resource_id=world["provider"]["id"],
    )


CASES = [
    # (resource, parameter, value): out of the column's or the driver's range
    ("scan", "findings_count", str(2**40)),  # int4
    ("scan", "findings_count__in", json.dumps([1, 2**31])),
    ("task", "progress", "40000"),  # int2
    ("audit", "seq__gt", str(2**63)),  # int8
    ("audit", "status__between", json.dumps([0, 2**35])),
    ("provider", "created_at", "9999-12-31"),  # the whole day has no end
    ("provider", "created_at__lte", "9999-12-31"),
    ("provider", "created_at__gt", "9999-12-31T23:00:00-14:00"),
    ("provider", "created_at__lt", "0001-01-01T00:00:00+14:00"),
    ("provider", "updated_at__in", json.dumps(["2024-01-01", "0001-01-01T01:00:00+05:00"])),
    ("finding", "inserted_at__gte", "1969-12-31"),  # UUIDv7 times start in 1970
    ("finding", "inserted_at", "1900-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("resource", "param", "value"), CASES)
async def test_out_of_range_values_are_a_400_naming_the_parameter(
    resource, param, value, app, client, world
):
    route = next(r for r in list_routes(app) if r.kind == "list" and r.resource.name == resource)
    r = await client.get(_path(route, world), params={param: value}, headers=world["owner"].headers)
    body = assert_problem(r, 400)
    assert param in body["detail"], body


async def test_lone_surrogates_in_a_search_body_are_a_400(app, client, world):
    for route in list_routes(app):
        if route.kind != "search":
            continue
        text_field = next(
            (n for n, f in route.resource.fields.items() if f.type.name == "string"), None
        )
        if text_field is None:
            continue
        r = await client.post(
            _path(route, world, text_field),
            content=b'["\\ud800x"]',
            headers={**world["owner"].headers, "content-type": "application/json"},
        )
        assert_problem(r, 400)


def _scalars() -> st.SearchStrategy[Any]:
    huge = st.integers(min_value=-(2**70), max_value=2**70)
    years = st.integers(min_value=1, max_value=9999).map(lambda y: f"{y:04d}-12-31")
    stamps = st.sampled_from(
        [
            "9999-12-31T23:59:59.999999-14:00",
            "0001-01-01T00:00:00+14:00",
            "1969-12-31T23:59:59Z",
            "2024-02-30",
            "2024-05-01T25:00:00",
            "+002024-05-01",
        ]
    )
    return st.one_of(
        huge,
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.text(max_size=12),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
        years,
        stamps,
        st.uuids().map(str),
        st.just("x" * 1200),
    )


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_no_filter_value_answers_5xx(data, app, client, world):
    routes = list_routes(app)
    route = data.draw(st.sampled_from(routes))
    fields = list(route.resource.fields)
    field = data.draw(st.sampled_from([*fields, "nope"]))
    headers = world["owner"].headers
    if route.kind == "search":
        values = data.draw(st.lists(_scalars() | st.none(), max_size=4))
        r = await client.post(
            _path(route, world, field),
            content=json.dumps(values),  # NaN and Infinity too, as some clients send them
            headers={**headers, "content-type": "application/json"},
        )
    elif route.kind == "distinct":
        r = await client.get(_path(route, world, field), headers=headers)
    else:
        op = data.draw(st.sampled_from([*OPERATORS, "bogus"]))
        value = data.draw(
            _scalars() | st.lists(_scalars(), max_size=3) | st.lists(st.lists(_scalars()))
        )
        key = field if op == "eq" else f"{field}__{op}"
        query = f"{quote(key)}={quote(_raw(value), safe='', errors='surrogatepass')}"
        r = await client.get(f"{_path(route, world)}?{query}", headers=headers)
    assert r.status_code < 500, (route.path, field, r.status_code, r.text)
    if r.status_code >= 400:
        assert_problem(r)


def test_the_routes_cover_every_list():
    """The property test draws from the live routes: every Resource of the app is in it."""
    from app.main import create_app
    from tests.conftest import Settings

    app = create_app(
        Settings(_env_file=None, database_url="postgresql+asyncpg://x@h/d", redis_url="redis://x")
    )
    names = {r.resource.name for r in list_routes(app)}
    assert {"provider", "finding", "scan", "task", "audit", "member", "role"} <= names
