"""Field rules, row grants, provider visibility and workspace scope hold for filters, sorts,
search and distinct values exactly as for plain lists: a hidden field does not exist, a hidden
row is never counted, another workspace is never seen."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.security.grants import row_scope
from app.services.audit import HISTORY
from app.services.providers import PROVIDERS
from tests.helpers import Api, assert_problem, without_volatile


@pytest.fixture(scope="module")
async def regions(client):
    """An owner, providers in eu and us, and a viewer limited to eu by a row grant."""
    api = Api(client)
    owner, viewer = await api.user("owner"), await api.user("viewer")
    slug = await api.workspace(owner)
    eu = [await api.provider(owner, slug, alias=f"eu-{i}", region="eu") for i in range(3)]
    us = [await api.provider(owner, slug, alias=f"us-{i}", region="us") for i in range(2)]
    await api.add_member(owner, slug, viewer, "viewer")
    viewer_id = (await api.me(viewer))["id"]
    r = await client.patch(
        f"/ws/{slug}/api/v1/members/{viewer_id}",
        json={"attributes": {"region": "eu"}},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    other = await api.user("other")
    other_slug = await api.workspace(other)
    foreign = await api.provider(other, other_slug, alias="foreign", region="eu")
    ws_id = uuid.UUID(await api.workspace_id(owner, slug))
    return {
        "owner": owner,
        "viewer": viewer,
        "slug": slug,
        "eu": eu,
        "us": us,
        "foreign": foreign,
        "ws_id": ws_id,
    }


def _same_as_unknown(hidden: dict, unknown: dict, name: str, stand_in: str) -> None:
    assert without_volatile(hidden) == {
        **without_volatile(unknown),
        "detail": without_volatile(unknown)["detail"].replace(stand_in, name),
    }


@pytest.mark.parametrize(
    "method,path,params,body",
    [
        ("GET", "/providers", {"{f}": "1"}, None),
        ("GET", "/providers", {"{f}__startswith": "1"}, None),
        ("GET", "/providers", {"{f}__in": '["1", "2"]'}, None),
        ("GET", "/providers", {"sort": "-{f}"}, None),
        ("GET", "/providers/distinct/{f}", {}, None),
        ("POST", "/providers/search/{f}", {}, ["1"]),
    ],
)
async def test_hidden_field_answers_like_an_unknown_one(
    method, path, params, body, regions, client
):
    """Viewers may not see provider uids: filtering, sorting, distinct and search on `uid`
    answer exactly as for a field that does not exist (and the listed fields omit it)."""
    base = f"/ws/{regions['slug']}/api/v1"
    answers = {}
    for name in ("uid", "zzz"):
        p = {k.replace("{f}", name): v.replace("{f}", name) for k, v in params.items()}
        r = await client.request(
            method,
            base + path.replace("{f}", name),
            params=p,
            json=body,
            headers=regions["viewer"].headers,
        )
        answers[name] = assert_problem(r, 400)
    _same_as_unknown(answers["uid"], answers["zzz"], "uid", "zzz")
    assert "uid" not in answers["uid"]["detail"].split(";")[1]
    r = await client.request(
        method,
        base + path.replace("{f}", "uid"),
        params={k.replace("{f}", "uid"): v.replace("{f}", "uid") for k, v in params.items()},
        json=body,
        headers=regions["owner"].headers,
    )
    assert r.status_code == 200, r.text  # the field exists for the owner


async def test_hidden_member_email(regions, client):
    base = f"/ws/{regions['slug']}/api/v1/members"
    viewer, owner = regions["viewer"], regions["owner"]
    hidden = await client.get(base, params={"email": owner.email}, headers=viewer.headers)
    unknown = await client.get(base, params={"zzz": owner.email}, headers=viewer.headers)
    _same_as_unknown(assert_problem(hidden, 400), assert_problem(unknown, 400), "email", "zzz")
    assert_problem(await client.get(f"{base}/distinct/email", headers=viewer.headers), 400)
    rows = (await client.get(base, headers=viewer.headers)).json()["data"]
    assert rows and all("email" not in r for r in rows)
    ok = await client.get(base, params={"email": owner.email}, headers=owner.headers)
    assert [r["email"] for r in ok.json()["data"]] == [owner.email]


async def test_row_grants_apply_to_lists_search_and_distinct(regions, client):
    base = f"/ws/{regions['slug']}/api/v1/providers"
    h = regions["viewer"].headers
    eu_ids = sorted(p["id"] for p in regions["eu"])
    listed = (await client.get(base, headers=h)).json()["data"]
    assert sorted(p["id"] for p in listed) == eu_ids
    assert (await client.get(f"{base}/distinct/region", headers=h)).json()["data"] == ["eu"]
    aliases = (await client.get(f"{base}/distinct/alias", headers=h)).json()["data"]
    assert aliases == ["eu-0", "eu-1", "eu-2"]
    everything = [p["alias"] for p in regions["eu"] + regions["us"]] + ["foreign"]
    found = (await client.post(f"{base}/search/alias", json=everything, headers=h)).json()
    assert sorted(p["id"] for p in found["data"]) == eu_ids
    by_id = await client.get(base, params={"region": "us"}, headers=h)
    assert by_id.json()["data"] == []
    owner = await client.get(f"{base}/distinct/region", headers=regions["owner"].headers)
    assert owner.json()["data"] == ["eu", "us"]


async def test_other_workspaces_never_show(regions, client):
    base = f"/ws/{regions['slug']}/api/v1/providers"
    h = regions["owner"].headers
    foreign = regions["foreign"]
    aliases = (await client.get(f"{base}/distinct/alias", headers=h)).json()["data"]
    assert "foreign" not in aliases
    for params in (
        {"id": foreign["id"]},
        {"id__in": f'["{foreign["id"]}"]'},
        {"alias": "foreign"},
        {"uid": foreign["uid"]},
    ):
        assert (await client.get(base, params=params, headers=h)).json()["data"] == []
    found = await client.post(f"{base}/search/id", json=[foreign["id"]], headers=h)
    assert found.json()["data"] == []
    ids = (await client.get(f"{base}/distinct/id", headers=h)).json()["data"]
    assert foreign["id"] not in ids and len(ids) == 5


def _request(app, query: bytes = b"", path_params: dict | None = None) -> Request:
    return Request(
        {
            "type": "http",
            "app": app,
            "query_string": query,
            "method": "GET",
            "path_params": path_params or {},
            "headers": [],
            "path": "/",
        }
    )


async def test_orm_criteria_reach_distinct_search_and_subqueries(regions, app, admin_engine):
    """The app layer alone (connected as the owner, so RLS is bypassed): the session's
    workspace scope and row grants are added to distinct-value selects, search selects and the
    history's correlated subquery, not only to entity lists."""
    distinct = await PROVIDERS.distinct_query(_request(app), "alias", None, None)
    search = await PROVIDERS.search_query(
        _request(app), "alias", ["eu-0", "us-0", "foreign"], None, None, None
    )
    async with AsyncSession(admin_engine) as session:
        everywhere = (await session.execute(distinct.statement())).scalars().all()
        assert everywhere == []  # no workspace in the session: nothing (fails closed)
        session.info["workspace_id"] = regions["ws_id"]
        scoped = (await session.execute(distinct.statement())).scalars().all()
        assert scoped == ["eu-0", "eu-1", "eu-2", "us-0", "us-1"]
        rows = (await session.execute(search.statement())).all()
        assert sorted(p.alias for p in rows) == ["eu-0", "us-0"]
        session.info["row_filters"] = row_scope(["viewer"], {"region": "eu"}, unlimited=True)[1]
        assert (await session.execute(distinct.statement())).scalars().all() == [
            "eu-0",
            "eu-1",
            "eu-2",
        ]
        rows = (await session.execute(search.statement())).all()
        assert [p.alias for p in rows] == ["eu-0"]
        history = await HISTORY.list_query(
            _request(
                app,
                path_params={"resource_type": "provider", "resource_id": regions["eu"][0]["id"]},
            ),
            None,
            None,
            None,
        )
        rows = (await session.execute(history.statement())).all()
        assert [r[0].action for r in rows] == ["create"]
        session.info["workspace_id"] = uuid.uuid4()
        assert (await session.execute(history.statement())).all() == []
