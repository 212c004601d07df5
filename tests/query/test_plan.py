"""Compiled list queries (`app.query.plan`): a shape compiled once gives, for any values, the
rows the ORM session gives for the same query; nothing but the named parameters changes with
the values; and the context's workspace, visibility and row grants are bound per request."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.requests import Request

from app.db.tenant import Visibility, apply_context
from app.query import plan
from app.query.queries import ListQuery
from app.security.grants import row_scope
from app.services.providers import PROVIDERS

# Pairs of queries with one shape and different values, and a few single ones.
SAME_SHAPE = [
    ({"alias__startswith": "pr"}, {"alias__startswith": "10"}),
    ({"region__in": '["eu", "us"]'}, {"region__in": '["ap"]'}),
    ({"alias__contains": "%"}, {"alias__contains": "_"}),
    ({"created_at__gte": "2000-01-01"}, {"created_at__gte": "2999-01-01"}),
    ({"provider_type": "aws", "alias__ne": "prod"}, {"provider_type": "gcp", "alias__ne": "x"}),
    ({"alias__exists": "false"}, {"alias__exists": "false"}),
    (
        {"created_at__between": '["2000-01-01", "2999-01-01"]'},
        {"created_at__between": '["2000-01-01", "2000-01-02"]'},
    ),
]


def _request(app: Any, params: dict[str, str]) -> Request:
    return Request(
        {
            "type": "http",
            "app": app,
            "query_string": urlencode(params).encode(),
            "method": "GET",
            "path_params": {},
            "headers": [],
            "path": "/",
        }
    )


async def _query(
    app: Any, params: dict[str, str], sort: str | None = None, cursor: str | None = None
) -> ListQuery:
    return await PROVIDERS.list_query(_request(app, params), 3, cursor, sort)


async def _both_ways(tx: Any, query: ListQuery) -> tuple[list[dict], list[dict]]:
    compiled = [dict(r) for r in await plan.fetch_rows(tx, query)]
    orm = [dict(r) for r in (await tx.session.execute(query.statement())).mappings()]
    return compiled, orm


@pytest.fixture
async def scoped(app, catalog):
    """A request transaction in the catalog's workspace, as its owner (everything visible)."""
    async with app.state.db.transaction() as tx:
        ws = uuid.UUID(catalog.workspace_id)
        await apply_context(tx, ws, uuid.UUID(catalog.owner_id), Visibility(True))
        tx.info["row_filter_key"], tx.info["row_filters"] = row_scope(["owner"], {}, unlimited=True)
        yield tx


async def test_compiled_rows_equal_the_orm_rows(app, scoped):
    queries = [p for pair in SAME_SHAPE for p in pair]
    for params in queries:
        for sort in (None, "alias", "-region,alias"):
            query = await _query(app, params, sort)
            compiled, orm = await _both_ways(scoped, query)
            assert compiled == orm, (params, sort)
            page = query.page(compiled)
            if page["next_cursor"]:  # the next page through a cursor, both ways
                nxt = await _query(app, params, sort, page["next_cursor"])
                compiled, orm = await _both_ways(scoped, nxt)
                assert compiled == orm, (params, sort, "page 2")


async def test_one_compile_per_shape_and_only_named_parameters_vary(app, scoped):
    for first, second in SAME_SHAPE:
        a, b = await _query(app, first), await _query(app, second)
        assert a.shape == b.shape
        plan_a, binder_a = plan.compile_plan(a, scoped.info, scoped.dialect)
        plan_b, binder_b = plan.compile_plan(b, scoped.info, scoped.dialect)
        assert plan_b is plan_a  # compiled once
        plan._PLANS.clear()
        fresh, _ = plan.compile_plan(b, scoped.info, scoped.dialect)
        varying = set(binder_b.values) | set(plan.scope_parameters(scoped.info))
        fixed_a = {k: v for k, v in plan_a.fixed.items() if k not in varying}
        fixed_b = {k: v for k, v in fresh.fixed.items() if k not in varying}
        assert fresh.sql == plan_a.sql
        assert fixed_a == fixed_b, (first, second)
        assert binder_a.values.keys() == binder_b.values.keys()


async def test_a_compiled_shape_serves_each_workspace_its_own_rows(app, catalog):
    query = await _query(app, {"alias__startswith": ""})
    seen = {}
    for ws_id, user_id in (
        (catalog.workspace_id, catalog.owner_id),
        (catalog.other_workspace_id, catalog.other_id),
    ):
        async with app.state.db.transaction() as tx:
            await apply_context(tx, uuid.UUID(ws_id), uuid.UUID(user_id), Visibility(True))
            tx.info["row_filter_key"], tx.info["row_filters"] = row_scope(
                ["owner"], {}, unlimited=True
            )
            seen[ws_id] = {r["id"] for r in await plan.fetch_rows(tx, query)}
    assert seen[catalog.workspace_id] and seen[catalog.other_workspace_id]
    assert not seen[catalog.workspace_id] & seen[catalog.other_workspace_id]
    assert seen[catalog.other_workspace_id] <= {uuid.UUID(p["id"]) for p in catalog.other_providers}


async def test_without_a_workspace_a_compiled_query_finds_nothing(app, catalog):
    query = await _query(app, {})
    async with app.state.db.transaction() as tx:
        await apply_context(tx, None, uuid.UUID(catalog.owner_id))
        assert await plan.fetch_rows(tx, query) == []


async def test_row_grants_need_their_key(app, catalog):
    query = await _query(app, {})
    async with app.state.db.transaction() as tx:
        await apply_context(tx, uuid.UUID(catalog.workspace_id), uuid.UUID(catalog.owner_id))
        tx.info["row_filters"] = row_scope(["viewer"], {"region": "eu"}, unlimited=True)[1]
        with pytest.raises(RuntimeError, match="without their key"):
            await plan.fetch_rows(tx, query)


async def test_limited_visibility_is_bound_per_request(app, catalog):
    """Provider visibility as a parameter: two contexts with different visible ids, one plan."""
    query = await _query(app, {})
    ids = [uuid.UUID(p["id"]) for p in catalog.providers]
    results = []
    for visible in (ids[:2], ids[2:5]):
        async with app.state.db.transaction() as tx:
            await apply_context(
                tx,
                uuid.UUID(catalog.workspace_id),
                uuid.UUID(catalog.owner_id),
                Visibility(False, tuple(visible)),
            )
            tx.info["row_filter_key"], tx.info["row_filters"] = row_scope(
                ["owner"], {}, unlimited=False
            )
            results.append({r["id"] for r in await plan.fetch_rows(tx, query)})
    assert results[0] <= set(ids[:2]) and results[0]
    assert results[1] <= set(ids[2:5]) and results[1]


async def test_row_pages_serialize_exactly_as_pydantic_would(app, scoped):
    """The orjson path for pages of database rows gives pydantic's bytes: UUIDs of the driver's
    own type, instants with and without microseconds, nulls, unicode, JSON values, hidden
    fields left out, a cursor."""
    from app.schemas.common import Page
    from app.schemas.provider import ProviderOut
    from app.schemas.scan import FindingOut
    from app.security.fields import rules_for
    from app.security.shaping import hidden_fields, response_adapter, row_fields, rows_json

    records = await scoped.fetch(
        """SELECT gen_random_uuid() AS id, gen_random_uuid() AS scan_id,
                  gen_random_uuid() AS provider_id, v.uid, 'check_1' AS check_id, v.title,
                  'high' AS severity, 'FAIL' AS status, v.extended AS status_extended,
                  v.muted, v.region, NULL::text AS resource_uid, 'r' AS resource_name,
                  NULL::text AS resource_type, v.compliance, '{}'::jsonb AS remediation,
                  v.at AS observed_at, v.at AS inserted_at, 'aws' AS provider_type,
                  v.region AS alias, v.at AS created_at, v.at AS updated_at
           FROM (VALUES
             ('u1', 'Ünïcode "quoted" \\ title ✓', NULL, true, 'eu',
              '{"cis": ["1.1", 2], "x": {"y": null}}'::jsonb,
              '2026-01-02 03:04:05.678901+00'::timestamptz),
             ('u2', 'plain', 'detail', false, NULL, '{}'::jsonb,
              '2026-01-02 03:04:05+00'::timestamptz),
             ('u3', 'tab	and newline', '', false, 'us', '{"k": 1.5}'::jsonb,
              NULL::timestamptz)
           ) AS v(uid, title, extended, muted, region, compliance, at)"""
    )
    rows = [dict(r) for r in records]
    as_records = list(records)
    rows[2]["inserted_at"] = rows[0]["inserted_at"]  # not nullable in FindingOut
    rows[2]["created_at"] = rows[2]["updated_at"] = rows[0]["created_at"]
    assert rows_json(
        row_fields(Page[ProviderOut], frozenset()), {"data": as_records[:2], "next_cursor": None}
    ) == rows_json(
        row_fields(Page[ProviderOut], frozenset()), {"data": rows[:2], "next_cursor": None}
    )
    for model in (Page[ProviderOut], Page[FindingOut]):
        for rules in ([], ["viewer"]):
            hidden = hidden_fields(rules_for(rules))
            fields = row_fields(model, hidden)
            assert fields is not None, model
            for cursor in (None, "abc"):
                content = {"data": rows, "next_cursor": cursor}
                fast = rows_json(fields, content)
                adapter = response_adapter(model, hidden)
                slow = adapter.dump_json(adapter.validate_python(content, from_attributes=True))
                assert fast == slow, (model, rules)
    assert (
        rows_json(
            row_fields(Page[ProviderOut], frozenset()), {"data": [object()], "next_cursor": None}
        )
        is None
    )
