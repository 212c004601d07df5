"""Bad queries answer 400 problem details that say what was wrong, and nothing else."""

from __future__ import annotations

import base64

import pytest

from tests.helpers import assert_problem

PROVIDERS = "/ws/{slug}/api/v1/providers"
FIELDS = "id, provider_type, uid, alias, region, created_at, updated_at"

# (query parameters, the start of the expected detail)
CASES = [
    ([("nope", "1")], f"unknown field 'nope'; filterable: {FIELDS}"),
    ([("nope__in", "[1]")], "unknown field 'nope'; filterable:"),
    ([("alias__foo", "1")], "unknown operator 'foo' in 'alias__foo'; operators: eq, ne, in,"),
    ([("alias__", "1")], "unknown operator '' in 'alias__'"),
    ([("__gt", "1")], "unknown field ''; filterable:"),
    (
        [("created_at__contains", "1")],
        "operator 'contains' does not apply to 'created_at' (timestamp); it takes: eq, exists, in,",
    ),
    ([("provider_type__gt", "aws")], "operator 'gt' does not apply to 'provider_type' (enum)"),
    ([("provider_type__startswith", "a")], "operator 'startswith' does not apply"),
    ([("id__contains", "0")], "operator 'contains' does not apply to 'id' (uuid)"),
    ([("provider_type", "ibm")], "'provider_type': 'ibm' is not one of: aws, azure, gcp"),
    ([("provider_type__in", '["aws", "ibm"]')], "'provider_type__in': 'ibm' is not one of"),
    ([("id", "abc")], "'id': 'abc' is not a UUID"),
    ([("id__in", '["abc"]')], "'id__in': 'abc' is not a UUID"),
    (
        [("id__between", '["00000000-0000-0000-0000-000000000000", 5]')],
        "'id__between': 5 is not a UUID",
    ),
    ([("created_at__gt", "yesterday")], "'created_at__gt': 'yesterday' is not a timestamp"),
    ([("created_at", "2024-13-01")], "'created_at': '2024-13-01' is not a timestamp"),
    ([("created_at", "2024-02-30T10:00:00Z")], "is not a timestamp"),
    ([("created_at__gte", "99999-01-01")], "is not a timestamp"),
    ([("alias__in", "prod")], "'alias__in': expects a JSON list"),
    ([("alias__in", '["a"')], "'alias__in': expects a JSON list"),
    ([("alias__in", '{"a": 1}')], "'alias__in': expects a JSON list"),
    ([("alias__in", '"a"')], "'alias__in': expects a JSON list"),
    ([("alias__in", "[NaN]")], "'alias__in': expects a JSON list"),
    ([("alias__in", "[Infinity]")], "'alias__in': expects a JSON list"),
    ([("alias__in", "[" * 5000 + "]" * 5000)], "'alias__in': expects a JSON list"),
    ([("alias__in", "[1, 2]")], "'alias__in': 1 is not a string"),
    ([("alias__in", "[true]")], "'alias__in': True is not a string"),
    ([("alias__in", '[["a"]]')], "'alias__in': ['a'] is not a string"),
    ([("alias__in", "[null]")], "'alias__in': null is not a value; use __exists=false"),
    ([("alias__between", '["a"]')], "'alias__between': expects a JSON list of two values"),
    ([("alias__between", '["a", "b", "c"]')], "expects a JSON list of two values"),
    ([("alias__between", '["a", null]')], "null is not a value"),
    ([("alias__exists", "maybe")], "'alias__exists': takes true or false"),
    ([("alias", "a\x00b")], "'alias': values must not contain NUL characters"),
    ([("alias__in", '["a\\u0000"]')], "values must not contain NUL characters"),
    ([("alias", "x" * 1001)], "'alias': values are at most 1000 characters"),
    ([("alias", "a"), ("alias", "b")], "'alias' is given more than once; use alias__in=[...]"),
    ([("sort", "nope")], f"unknown field 'nope'; sortable: {FIELDS}"),
    ([("sort", "alias,-alias")], "sort names 'alias' twice"),
    ([("sort", "a,b,c,d,e")], "sort takes at most 4 fields"),
    ([("sort", "alias,")], "sort has an empty field"),
    ([("sort", "-")], "sort has an empty field"),
    ([("limit", "0")], "limit must be between 1 and 200"),
    ([("limit", "201")], "limit must be between 1 and 200"),
    ([("cursor", "garbage")], "cursor is not valid for this list"),
    ([("cursor", "")], "cursor is not valid for this list"),
    ([("cursor", "%%%")], "cursor is not valid for this list"),
]


@pytest.mark.parametrize("params,detail", CASES, ids=[str(i) for i in range(len(CASES))])
async def test_bad_query(params, detail, client, catalog):
    r = await client.get(
        PROVIDERS.format(slug=catalog.slug), params=params, headers=catalog.owner.headers
    )
    body = assert_problem(r, 400)
    assert detail in body["detail"], body["detail"]
    assert len(body["detail"]) < 400


async def test_limit_that_is_not_a_number_is_a_validation_error(client, catalog):
    r = await client.get(
        PROVIDERS.format(slug=catalog.slug), params={"limit": "ten"}, headers=catalog.owner.headers
    )
    assert_problem(r, 422)


def _tamper(cursor: str) -> list[str]:
    """A sealed cursor with one bit flipped anywhere (nonce, ciphertext, tag), cut short, or
    lengthened."""
    raw = bytes(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    edited = []
    for at in (0, 11, 12, len(raw) // 2, len(raw) - 17, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[at] ^= 1
        edited.append(bytes(flipped))
    return [
        base64.urlsafe_b64encode(b).decode().rstrip("=")
        for b in (*edited, raw[12:], raw[:-1], raw + b"\x00")
    ] + [cursor[:-2], cursor + "A"]


async def test_cursors_cannot_be_edited_or_reused_elsewhere(client, catalog):
    path = PROVIDERS.format(slug=catalog.slug)
    h = catalog.owner.headers
    first = (await client.get(path, params={"limit": 2, "sort": "alias"}, headers=h)).json()
    cursor = first["next_cursor"]
    assert cursor
    ok = await client.get(path, params={"limit": 2, "sort": "alias", "cursor": cursor}, headers=h)
    assert ok.status_code == 200
    for bad in _tamper(cursor):
        r = await client.get(path, params={"limit": 2, "sort": "alias", "cursor": bad}, headers=h)
        assert assert_problem(r, 400)["detail"].startswith("cursor is not valid"), bad
    # the same cursor under another sort, or on another list
    other_sort = await client.get(
        path, params={"limit": 2, "sort": "-alias", "cursor": cursor}, headers=h
    )
    assert_problem(other_sort, 400)
    groups = await client.get(
        f"/ws/{catalog.slug}/api/v1/provider-groups", params={"cursor": cursor}, headers=h
    )
    assert_problem(groups, 400)
    distinct = await client.get(f"{path}/distinct/alias", params={"cursor": cursor}, headers=h)
    assert_problem(distinct, 400)


async def test_search_and_distinct_errors(client, catalog):
    path = PROVIDERS.format(slug=catalog.slug)
    h = catalog.owner.headers
    r = await client.post(f"{path}/search/nope", json=["a"], headers=h)
    detail = assert_problem(r, 400)["detail"]
    assert detail == f"unknown field 'nope'; searchable: {FIELDS}"
    r = await client.post(f"{path}/search/id", json=["abc"], headers=h)
    assert assert_problem(r, 400)["detail"] == "search on 'id': 'abc' is not a UUID"
    r = await client.post(f"{path}/search/alias", json=["a"] * 1001, headers=h)
    assert "at most 1000 values" in assert_problem(r, 400)["detail"]
    r = await client.post(f"{path}/search/alias", json=[None], headers=h)
    assert "null is not a value" in assert_problem(r, 400)["detail"]
    r = await client.post(f"{path}/search/alias", json={"a": 1}, headers=h)
    assert_problem(r, 422)
    r = await client.post(
        f"{path}/search/alias",
        content=b"[not json",
        headers=h | {"content-type": "application/json"},
    )
    assert_problem(r, 422)
    r = await client.get(f"{path}/distinct/nope", headers=h)
    assert assert_problem(r, 400)["detail"].startswith("unknown field 'nope'; listable:")
    r = await client.get(f"{path}/distinct/alias", params={"alias__zz": "1"}, headers=h)
    assert "unknown operator 'zz'" in assert_problem(r, 400)["detail"]
    r = await client.get(f"{path}/distinct/alias", params={"sort": "-alias"}, headers=h)
    assert "sort does not apply" in assert_problem(r, 400)["detail"]


async def test_values_reach_the_database_as_parameters(client, catalog):
    """SQL in a value is just a value (and the table is still there afterwards)."""
    path = PROVIDERS.format(slug=catalog.slug)
    h = catalog.owner.headers
    for value in ("x' OR '1'='1", "'; DROP TABLE provider; --", "\\' OR 1=1 --"):
        for op in ("", "__contains", "__gt", "__startswith"):
            r = await client.get(path, params={f"alias{op}": value}, headers=h)
            assert r.status_code == 200
            assert all(value in (row["alias"] or "") or op == "__gt" for row in r.json()["data"])
    r = await client.get(path, params={"sort": "alias;DROP TABLE provider"}, headers=h)
    assert_problem(r, 400)
    assert (await client.get(path, headers=h)).status_code == 200
