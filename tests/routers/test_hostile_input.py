"""Hostile input, table-driven: every refusal is a 4xx problem+json that leaks nothing (no
traceback, no SQL, no driver name), nothing is ever a 5xx, and nothing is written."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from app.schemas.provider_uid import ProviderType
from tests.helpers import Api, User, assert_problem, aws_uid


@pytest.fixture(scope="module")
async def owner(client: httpx.AsyncClient) -> User:
    return await Api(client).user("hostile")


@pytest.fixture(scope="module")
async def slug(client: httpx.AsyncClient, owner: User) -> str:
    api = Api(client)
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug, alias="seed")
    await api.group(owner, slug, provider_ids=[provider["id"]])
    return slug


async def state(
    client: httpx.AsyncClient, owner: User, slug: str, *, everything: bool = False
) -> dict[str, Any]:
    """What the routes under test can write, read back as the owner: providers and groups,
    and with `everything` also the owner's workspaces and the members."""
    api = Api(client)
    out: dict[str, Any] = {
        "providers": await api.all(owner, slug, "providers"),
        "groups": await api.all(owner, slug, "provider-groups"),
    }
    if everything:
        workspaces = await client.get("/api/v1/workspaces", headers=owner.headers)
        members = await client.get(f"/ws/{slug}/api/v1/members", headers=owner.headers)
        out["workspaces"] = workspaces.json()["data"]
        out["members"] = members.json()["data"]
    return out


def assert_refused(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if statuses:
        assert r.status_code in statuses, (r.status_code, r.text)
    return assert_problem(r)


# Provider UIDs, per type


VALID_UIDS: dict[ProviderType, str] = {
    ProviderType.aws: "123456789012",
    ProviderType.azure: "8f2a1b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    ProviderType.gcp: "my-project-123",
    ProviderType.m365: "contoso.onmicrosoft.com",
    ProviderType.kubernetes: "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
    ProviderType.github: "octo-org",
    ProviderType.iac: "https://github.com/acme/infra.git",
    ProviderType.oraclecloud: "ocid1.tenancy.oc1..aaaaaaaabcdefghijklmnop",
    ProviderType.mongodbatlas: "5f1d7c2e9b3a4d6e8f0a1b2c",
    ProviderType.alibabacloud: "1234567890123456",
}

ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
FULLWIDTH_DIGITS = "０１２３４５６７８９"

BAD_UIDS: dict[ProviderType, list[str]] = {
    ProviderType.aws: [
        "12345678901",
        "1234567890123",
        "12345678901a",
        "1234-5678-9012",
        ARABIC_DIGITS + "12",  # twelve Unicode digits, not twelve ASCII digits
        FULLWIDTH_DIGITS + "12",
        "123456789012; DROP TABLE provider",
    ],
    ProviderType.azure: [
        "not-a-uuid",
        "8f2a1b3c-4d5e-1f60-8a7b-9c0d1e2f3a4b",  # version 1
        "8f2a1b3c-4d5e-4f60-7a7b-9c0d1e2f3a4b",  # wrong variant
        "8f2a1b3c4d5e4f608a7b9c0d1e2f3a4b",
        "{8f2a1b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b}",
        "8f2a1b3c-4d5e-4f60-8a7b-9c0d1e2f3a4bff",
    ],
    ProviderType.gcp: [
        "short",
        "1project",
        "My-Project",
        "p" * 31,
        "my_project",
        "proj ect-1",
    ],
    ProviderType.m365: [
        "contoso",
        "-contoso.com",
        "contoso..com",
        "contoso.c",
        "contoso.com/path",
        "con toso.com",
        "l" * 64 + ".com",
        "conto\u017fo.com",  # long s, which case-folds to "s"
        "contoso.\u212aom",  # Kelvin sign, which case-folds to "k"
        "ćontoso.com",
    ],
    ProviderType.kubernetes: [
        "a",
        "x" * 252,
        "-ctx",
        "ctx with space",
        "ctx;rm -rf /",
        "ctxé",
    ],
    ProviderType.github: [
        "-octo",
        "octo-",
        "octo--cat",
        "a" * 40,
        "octo_cat",
        "octö",
    ],
    ProviderType.iac: [
        "github.com/acme/infra",
        "ftp://github.com/acme/infra",
        "https://github.com",
        "https://github.com/",
        "https:///acme/infra",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "https://github.com/acme/in fra",
        "git@github.com",
        "https://g\u0131thub.com/acme/infra",  # dotless i, which case-folds to "i"
        "https://user:ghp_secret@github.com/acme/infra.git",  # a credential in the uid
    ],
    ProviderType.oraclecloud: [
        "ocid2.tenancy.oc1..aaaa",
        "ocid1.tenancy..aaaa",
        "ocid1.TENANCY.oc1..aaaa",
        "ocid1.tenancy.oc1..",
        "ocid1.tenancy.ocx..aaaa",
    ],
    ProviderType.mongodbatlas: [
        "5f1d7c2e9b3a4d6e8f0a1b2",
        "5f1d7c2e9b3a4d6e8f0a1b2c3",
        "5f1d7c2e9b3a4d6e8f0a1b2g",
        "５f1d7c2e9b3a4d6e8f0a1b2c",
    ],
    ProviderType.alibabacloud: [
        "123456789012345",
        "12345678901234567",
        "123456789012345a",
        ARABIC_DIGITS + "123456",
    ],
}


def test_every_provider_type_has_cases() -> None:
    assert set(VALID_UIDS) == set(ProviderType) == set(BAD_UIDS)


async def test_one_valid_uid_per_type_is_created(api: Api) -> None:
    owner = await api.user("valid-uids")
    slug = await api.workspace(owner)
    for provider_type, uid in VALID_UIDS.items():
        body = {"provider_type": provider_type.value, "uid": uid, "alias": provider_type.value}
        r = await api.client.post(f"/ws/{slug}/api/v1/providers", json=body, headers=owner.headers)
        assert r.status_code == 201, (provider_type, r.text)
        created = r.json()
        assert (created["provider_type"], created["uid"]) == (provider_type.value, uid)
        again = await api.client.post(
            f"/ws/{slug}/api/v1/providers", json=body, headers=owner.headers
        )
        assert_problem(again, 409)
    listed = await api.all(owner, slug, "providers")
    assert sorted(p["provider_type"] for p in listed) == sorted(t.value for t in ProviderType)


BAD_UID_CASES = [(t, uid) for t, uids in BAD_UIDS.items() for uid in uids]


@pytest.mark.parametrize(
    ("provider_type", "uid"),
    BAD_UID_CASES,
    ids=[f"{t.value}-{i}" for i, (t, _) in enumerate(BAD_UID_CASES)],
)
async def test_bad_uid_is_refused(
    provider_type: ProviderType, uid: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug)
    r = await client.post(
        f"/ws/{slug}/api/v1/providers",
        json={"provider_type": provider_type.value, "uid": uid},
        headers=owner.headers,
    )
    problem = assert_refused(r, 422)
    assert any(provider_type.value in e["msg"] for e in problem["errors"]), problem
    assert "ghp_secret" not in r.text
    assert await state(client, owner, slug) == before


# Provider bodies: sizes, types, unknown fields


def _provider(**changes: Any) -> dict[str, Any]:
    return {"provider_type": "aws", "uid": aws_uid(), **changes}


BAD_PROVIDER_BODIES: dict[str, Any] = {
    "uid too long": _provider(uid="1" * 301),
    "uid a megabyte": _provider(uid="1" * 1_000_000),
    "uid empty": _provider(uid=""),
    "alias too long": _provider(alias="a" * 101),
    "alias empty": _provider(alias=""),
    "alias with NUL": _provider(alias="pro\x00d"),
    "region too long": _provider(region="r" * 41),
    "region uppercase": _provider(region="EU"),
    "region with space": _provider(region="eu west"),
    "region sql": _provider(region="eu'; DROP TABLE provider; --"),
    "type as number": _provider(provider_type=1),
    "type unknown": _provider(provider_type="amazon"),
    "type wrong case": _provider(provider_type="AWS"),
    "type null": _provider(provider_type=None),
    "uid as number": _provider(uid=123456789012),
    "uid as list": _provider(uid=["123456789012"]),
    "alias as number": _provider(alias=5),
    "alias as object": _provider(alias={"$ne": None}),
    "region as bool": _provider(region=True),
    "missing uid": {"provider_type": "aws"},
    "missing type": {"uid": aws_uid()},
    "unknown field": _provider(foo=1),
    "unknown field id": _provider(id=str(uuid.uuid4())),
    "unknown field created_at": _provider(created_at="2020-01-01T00:00:00Z"),
    "unknown field deleted_at": _provider(deleted_at="2020-01-01T00:00:00Z"),
    "body is a list": [_provider()],
    "body is a string": "aws",
    "body is a number": 1,
    "body is null": None,
    "body is empty": {},
    "a hundred thousand unknown fields": {f"f{i}": i for i in range(100_000)},
    "a megabyte-long unknown field": _provider(**{"k" * 1_000_000: 1}),
    "a million-element list": list(range(1_000_000)),
}


@pytest.mark.parametrize("case", list(BAD_PROVIDER_BODIES))
async def test_bad_provider_body_is_refused(
    case: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug)
    r = await client.post(
        f"/ws/{slug}/api/v1/providers", json=BAD_PROVIDER_BODIES[case], headers=owner.headers
    )
    if len(r.request.content) > 1 << 20:  # over WARDEN_MAX_BODY_BYTES: refused unparsed
        assert_refused(r, 413)
    else:
        problem = assert_refused(r, 422)
        assert problem["errors"], problem
    assert len(r.content) < 200_000, "the error echoes the huge input back"
    assert await state(client, owner, slug) == before


BAD_PATCH_BODIES: dict[str, Any] = {
    "alias too long": {"alias": "a" * 101},
    "alias with NUL": {"alias": "\x00"},
    "region uppercase": {"region": "EU"},
    "uid is not patchable": {"uid": aws_uid()},
    "type is not patchable": {"provider_type": "gcp"},
    "unknown field": {"foo": 1},
    "body is a list": [{"alias": "x"}],
    "body is null": None,
}


@pytest.mark.parametrize("case", list(BAD_PATCH_BODIES))
async def test_bad_provider_patch_is_refused(
    case: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug)
    provider_id = before["providers"][0]["id"]
    r = await client.patch(
        f"/ws/{slug}/api/v1/providers/{provider_id}",
        json=BAD_PATCH_BODIES[case],
        headers=owner.headers,
    )
    assert_refused(r, 422)
    assert await state(client, owner, slug) == before


BAD_GROUP_BODIES: dict[str, Any] = {
    "name empty": {"name": ""},
    "name too long": {"name": "g" * 101},
    "name with NUL": {"name": "g\x00"},
    "name as list": {"name": ["g"]},
    "provider id not a uuid": {"name": "g1", "provider_ids": ["not-a-uuid"]},
    "provider id sql": {"name": "g2", "provider_ids": ["' OR 1=1 --"]},
    "provider ids not a list": {"name": "g3", "provider_ids": "abc"},
    "too many provider ids": {"name": "g4", "provider_ids": [str(uuid.uuid4())] * 1001},
    "unknown provider id": {"name": "g5", "provider_ids": [str(uuid.uuid4())]},
    "unknown field": {"name": "g6", "foo": 1},
}


@pytest.mark.parametrize("case", list(BAD_GROUP_BODIES))
async def test_bad_provider_group_body_is_refused(
    case: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug)
    r = await client.post(
        f"/ws/{slug}/api/v1/provider-groups", json=BAD_GROUP_BODIES[case], headers=owner.headers
    )
    assert_refused(r, 400, 422)
    group_id = before["groups"][0]["id"]
    r = await client.patch(
        f"/ws/{slug}/api/v1/provider-groups/{group_id}",
        json=BAD_GROUP_BODIES[case],
        headers=owner.headers,
    )
    assert_refused(r, 400, 422)
    assert await state(client, owner, slug) == before


BROKEN_JSON: dict[str, tuple[bytes, str]] = {
    "truncated": (b'{"provider_type": "aws", "uid": "1234', "application/json"),
    "not json": (b"provider_type=aws", "application/json"),
    "empty": (b"", "application/json"),
    "trailing comma": (b'{"provider_type": "aws",}', "application/json"),
    "single quotes": (b"{'provider_type': 'aws'}", "application/json"),
    "not utf-8": (b'{"provider_type": "\xff\xfe"}', "application/json"),
    "lone surrogate": (
        b'{"provider_type": "aws", "uid": "123456789012", "alias": "\\ud800"}',
        "application/json",
    ),
    "NaN": (b'{"provider_type": "aws", "uid": NaN}', "application/json"),
    "deeply nested": (b"[" * 200_000 + b"]" * 200_000, "application/json"),
    "huge number": (b'{"provider_type": "aws", "uid": 1' + b"0" * 5000 + b"}", "application/json"),
    "form encoded": (b"provider_type=aws&uid=123456789012", "application/x-www-form-urlencoded"),
    "text/plain": (b'{"provider_type": "aws", "uid": "123456789012"}', "text/plain"),
    "ten megabytes": (json.dumps(_provider(alias="a" * 10_000_000)).encode(), "application/json"),
}


@pytest.mark.parametrize("case", list(BROKEN_JSON))
async def test_broken_json_is_refused(
    case: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug)
    raw, content_type = BROKEN_JSON[case]
    r = await client.post(
        f"/ws/{slug}/api/v1/providers",
        content=raw,
        headers={**owner.headers, "content-type": content_type},
    )
    assert_refused(r, 400, 413, 415, 422)
    assert len(r.content) < 200_000, "the error echoes the huge input back"
    assert await state(client, owner, slug) == before


# Paths and query strings


BAD_IDS = [
    "not-a-uuid",
    "1",
    "' OR 1=1 --",
    "1; DROP TABLE provider",
    "%27%20OR%20%271%27%3D%271",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "00000000-0000-0000-0000-000000000000",
    str(uuid.uuid4()),
    "x" * 5000,
]


@pytest.mark.parametrize("resource", ["providers", "provider-groups"])
@pytest.mark.parametrize("bad_id", BAD_IDS, ids=[f"id{i}" for i in range(len(BAD_IDS))])
async def test_bad_ids_in_paths_are_not_found(
    resource: str, bad_id: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug)
    path = f"/ws/{slug}/api/v1/{resource}/{bad_id}"
    body = {"alias": "x"} if resource == "providers" else {"name": "x"}
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(
            method, path, json=body if method == "PATCH" else None, headers=owner.headers
        )
        assert_refused(r, 404)
    assert await state(client, owner, slug) == before


BAD_QUERIES: list[dict[str, str]] = [
    {"cursor": "abc"},
    {"cursor": ""},
    {"cursor": "' OR 1=1 --"},
    {"cursor": "00000000-0000-0000-0000-000000000000' OR '1'='1"},
    {"cursor": "x" * 65},
    {"cursor": "\x00"},
    {"limit": "0"},
    {"limit": "-1"},
    {"limit": "abc"},
    {"limit": "1.5"},
    {"limit": ""},
    {"limit": "1001"},
    {"limit": "201"},
    {"limit": "1" + "0" * 40},
    {"limit": "1; DROP TABLE provider"},
]


@pytest.mark.parametrize("resource", ["providers", "provider-groups"])
@pytest.mark.parametrize("params", BAD_QUERIES, ids=[f"q{i}" for i in range(len(BAD_QUERIES))])
async def test_bad_cursor_or_limit_is_refused(
    resource: str, params: dict[str, str], client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    r = await client.get(f"/ws/{slug}/api/v1/{resource}", params=params, headers=owner.headers)
    assert_refused(r, 400, 422)


BAD_SLUGS = [
    "a'--",
    "a;drop",
    "ws' OR '1'='1",
    "UPPER",
    "-dash",
    "dash-",
    "under_score",
    "%00",
    "a%0Ab",
    "s" * 64,
    "s" * 5000,
]


@pytest.mark.parametrize("bad_slug", BAD_SLUGS, ids=[f"slug{i}" for i in range(len(BAD_SLUGS))])
async def test_hostile_slugs_are_refused(
    bad_slug: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug, everything=True)
    base = f"/ws/{bad_slug}/api/v1"
    for method, path, body in (
        ("GET", f"{base}/providers", None),
        ("POST", f"{base}/providers", _provider()),
        ("GET", f"{base}/provider-groups", None),
        ("POST", f"{base}/members", {"email": owner.email, "role": "viewer"}),
    ):
        r = await client.request(method, path, json=body, headers=owner.headers)
        # Too long to be a slug: a validation error; otherwise simply not found.
        assert_refused(r, 422 if len(bad_slug) > 63 else 404)
    assert await state(client, owner, slug, everything=True) == before


BAD_WORKSPACES: list[Any] = [
    {"slug": "UPPER", "name": "x"},
    {"slug": "-dash", "name": "x"},
    {"slug": "a" * 64, "name": "x"},
    {"slug": "a'; DROP TABLE workspace; --", "name": "x"},
    {"slug": "", "name": "x"},
    {"slug": "ok-slug", "name": ""},
    {"slug": "ok-slug", "name": "n" * 201},
    {"slug": "ok-slug", "name": "nul\x00"},
    {"slug": "ok-slug", "name": "x", "id": str(uuid.uuid4())},
    {"slug": 5, "name": "x"},
    ["ok-slug"],
]


@pytest.mark.parametrize("body", BAD_WORKSPACES, ids=[f"ws{i}" for i in range(len(BAD_WORKSPACES))])
async def test_bad_workspace_create_is_refused(
    body: Any, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug, everything=True)
    r = await client.post("/api/v1/workspaces", json=body, headers=owner.headers)
    assert_refused(r, 422)
    assert await state(client, owner, slug, everything=True) == before


BAD_MEMBERS: list[Any] = [
    {"email": "x'; DROP TABLE membership; --", "role": "viewer"},
    {"email": "a\x00b@example.com", "role": "viewer"},
    {"email": "someone@example.com", "role": "r" * 41},
    {"email": "someone@example.com", "role": ""},
    {"email": "someone@example.com", "role": "viewer\x00"},
    {"email": "someone@example.com", "role": 1},
    {"email": "someone@example.com"},
    {"email": "someone@example.com", "role": "viewer", "user_id": str(uuid.uuid4())},
]


@pytest.mark.parametrize("body", BAD_MEMBERS, ids=[f"member{i}" for i in range(len(BAD_MEMBERS))])
async def test_bad_member_body_is_refused(
    body: Any, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug, everything=True)
    r = await client.post(f"/ws/{slug}/api/v1/members", json=body, headers=owner.headers)
    assert_refused(r, 422)
    assert await state(client, owner, slug, everything=True) == before


BAD_MEMBER_PATCHES: list[Any] = [
    {"attributes": {"region": "e\x00u"}},
    {"attributes": {"reg\x00ion": "eu"}},
    {"attributes": {"nested": {"deeper": ["ok", "n\x00l"]}}},
    {"attributes": ["region", "eu"]},
    {"attributes": "region=eu"},
    {"role": "viewer\x00"},
    {"role": "r" * 41},
    {"role": ""},
    {"user_id": str(uuid.uuid4())},
    {"workspace_id": str(uuid.uuid4())},
    # Nested deeper than a response can be serialized: stored, it would break every read.
    {"attributes": {"a": json.loads("[" * 300 + "]" * 300)}},
    {"attributes": {"a": {"b": "c"}}},
    {"attributes": {"a": [["eu"]]}},
    {"attributes": {"k" * 65: "eu"}},
    {"attributes": {f"k{i}": i for i in range(10_000)}},
    {"attributes": {"region": "r" * 100_000}},
]


@pytest.mark.parametrize(
    "body", BAD_MEMBER_PATCHES, ids=[f"patch{i}" for i in range(len(BAD_MEMBER_PATCHES))]
)
async def test_bad_member_patch_is_refused(
    body: Any, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug, everything=True)
    r = await client.patch(
        f"/ws/{slug}/api/v1/members/{owner.id}", json=body, headers=owner.headers
    )
    assert_refused(r, 422)
    assert len(r.content) < 200_000, "the error echoes the huge input back"
    assert await state(client, owner, slug, everything=True) == before


async def test_member_attributes_of_the_allowed_shape_round_trip(
    client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    """Control for the refusals above: scalars and flat lists are stored and read back."""
    attributes = {"region": ["eu", "us"], "tier": 2, "oncall": True, "team": "sre", "x": None}
    path = f"/ws/{slug}/api/v1/members/{owner.id}"
    r = await client.patch(path, json={"attributes": attributes}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["attributes"] == attributes, r.text
    r = await client.patch(path, json={"attributes": {}}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["attributes"] == {}, r.text


# Framework errors are problems too


@pytest.mark.parametrize(
    "path", ["/nope", "/api/v1/nope", "/ws/x/api/v1/nope", "/api/v2/auth/login", "/%00"]
)
async def test_unknown_paths_are_problem_404(
    path: str, client: httpx.AsyncClient, owner: User
) -> None:
    for headers in ({}, owner.headers):
        assert_problem(await client.get(path, headers=headers), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/v1/auth/login"),
        ("GET", "/api/v1/auth/logout"),
        ("PUT", "/api/v1/workspaces"),
        ("PUT", "/ws/{slug}/api/v1/providers"),
        ("POST", "/healthz"),
        ("PATCH", "/ws/{slug}/api/v1/provider-groups"),
    ],
)
async def test_wrong_methods_are_problem_405(
    method: str, path: str, client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    before = await state(client, owner, slug, everything=True)
    r = await client.request(method, path.format(slug=slug), headers=owner.headers, json={})
    body = assert_problem(r, 405)
    assert body["type"].endswith("/method-not-allowed"), body
    assert r.headers.get("allow"), r.headers
    assert await state(client, owner, slug, everything=True) == before


async def test_nothing_hostile_reached_the_database_as_data(
    client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    """After every case above, the shared workspace still holds just its seed rows."""
    now = await state(client, owner, slug, everything=True)
    assert [p["alias"] for p in now["providers"]] == ["seed"]
    assert len(now["groups"]) == 1
    assert [w["slug"] for w in now["workspaces"]] == [slug]
    assert [m["email"] for m in now["members"]] == [owner.email]
    assert now["providers"][0]["provider_type"] == "aws"


async def test_body_limit_counts_streamed_bytes(
    client: httpx.AsyncClient, owner: User, slug: str
) -> None:
    """A chunked body with no Content-Length is cut off at the limit too, as a 413 problem."""
    before = await state(client, owner, slug)

    async def chunks():
        yield b'{"provider_type": "aws", "uid": "123456789012", "alias": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    r = await client.post(
        f"/ws/{slug}/api/v1/providers",
        content=chunks(),
        headers={**owner.headers, "content-type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert_refused(r, 413)
    assert await state(client, owner, slug) == before
