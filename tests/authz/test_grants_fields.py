"""Row grants (declared filters per role, using attributes) and field rules (excluded,
restricted fields), through lists, reads, PATCH and writes."""

from __future__ import annotations

from app.db.models import Provider
from app.security import grants
from app.security.grants import AttributeIn, Grant, row_scope
from tests.helpers import Api, assert_problem


async def _member_id(api: Api, user) -> str:
    return str((await api.me(user))["id"])


async def test_viewer_region_grant(api: Api):
    owner, viewer, other_viewer = await api.user("owner"), await api.user("v"), await api.user("v2")
    slug = await api.workspace(owner)
    eu = await api.provider(owner, slug, region="eu")
    us = await api.provider(owner, slug, region="us")
    await api.provider(owner, slug)  # no region
    await api.add_member(owner, slug, viewer, "viewer")
    await api.add_member(owner, slug, other_viewer, "viewer")
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/members/{await _member_id(api, viewer)}",
        json={"attributes": {"region": "eu"}},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    assert [p["id"] for p in await api.all(viewer, slug, "providers")] == [eu["id"]]
    assert_problem(
        await api.client.get(f"/ws/{slug}/api/v1/providers/{us['id']}", headers=viewer.headers), 404
    )
    # A viewer without the attribute is not narrowed; the owner never is.
    assert len(await api.all(other_viewer, slug, "providers")) == 3
    assert len(await api.all(owner, slug, "providers")) == 3
    # A list attribute widens within the grant.
    await api.client.patch(
        f"/ws/{slug}/api/v1/members/{await _member_id(api, viewer)}",
        json={"attributes": {"region": ["eu", "us"]}},
        headers=owner.headers,
    )
    assert {p["id"] for p in await api.all(viewer, slug, "providers")} == {eu["id"], us["id"]}


async def test_members_cannot_set_their_own_attributes(api: Api):
    owner, viewer = await api.user("owner"), await api.user("v")
    slug = await api.workspace(owner)
    await api.add_member(owner, slug, viewer, "viewer")
    r = await api.client.patch(
        f"/ws/{slug}/api/v1/members/{await _member_id(api, viewer)}",
        json={"attributes": {"region": "us"}},
        headers=viewer.headers,
    )
    assert_problem(r, 403)


def _rows(roles: list[str], attributes: dict) -> dict:
    return dict(row_scope(roles, attributes, unlimited=True)[1])


def test_grants_combine_or_across_and_within(monkeypatch):
    a = Grant(
        Provider,
        frozenset({"viewer"}),
        (AttributeIn("region", "region"), AttributeIn("alias", "alias")),
        "a",
    )
    b = Grant(Provider, frozenset({"approver"}), (AttributeIn("region", "zone"),), "b")
    monkeypatch.setattr(grants, "GRANTS", (a, b))
    attributes = {"region": "eu", "alias": "x", "zone": "us"}
    sql = str(
        _rows(["viewer", "approver"], attributes)[Provider].compile(
            compile_kwargs={"literal_binds": True}
        )
    )
    assert sql.count(" OR ") == 1 and sql.count(" AND ") == 1, sql
    assert _rows(["engineer"], attributes) == {}
    # A member without a grant's attributes is not restricted by that grant: it opens the rows.
    assert Provider not in _rows(["viewer", "approver"], {"zone": "us"})
    # An empty list of values allows nothing.
    assert Provider in _rows(["viewer"], {"region": [], "alias": []})


async def test_viewer_never_sees_excluded_fields(api: Api):
    owner, viewer = await api.user("owner"), await api.user("v")
    slug = await api.workspace(owner)
    p = await api.provider(owner, slug, alias="prod")
    await api.add_member(owner, slug, viewer, "viewer")
    listed = await api.all(viewer, slug, "providers")
    assert listed and all("uid" not in row for row in listed)
    one = (
        await api.client.get(f"/ws/{slug}/api/v1/providers/{p['id']}", headers=viewer.headers)
    ).json()
    assert "uid" not in one and one["alias"] == "prod"
    assert (
        "uid"
        in (
            await api.client.get(f"/ws/{slug}/api/v1/providers/{p['id']}", headers=owner.headers)
        ).json()
    )
    members = (await api.client.get(f"/ws/{slug}/api/v1/members", headers=viewer.headers)).json()[
        "data"
    ]
    assert members and all("email" not in m for m in members)
    assert all(
        "email" in m
        for m in (await api.client.get(f"/ws/{slug}/api/v1/members", headers=owner.headers)).json()[
            "data"
        ]
    )


async def test_writes_naming_excluded_or_restricted_fields_are_refused(api: Api):
    owner, engineer, editor = await api.user("owner"), await api.user("e"), await api.user("ed")
    slug = await api.workspace(owner)
    p = await api.provider(owner, slug, region="eu", alias="a")
    await api.add_member(owner, slug, engineer, "engineer")
    # A viewer-based custom role that may update providers: `uid` stays excluded for it.
    role = (
        await api.client.post(
            f"/ws/{slug}/api/v1/roles",
            json={"name": "Editor", "inherits_from": "viewer", "grants": ["provider.update"]},
            headers=owner.headers,
        )
    ).json()
    await api.add_member(owner, slug, editor, role["id"])
    url = f"/ws/{slug}/api/v1/providers/{p['id']}"
    assert_problem(
        await api.client.patch(url, json={"region": "us"}, headers=engineer.headers), 403
    )
    ok = await api.client.patch(url, json={"alias": "b"}, headers=engineer.headers)
    assert ok.status_code == 200 and ok.json()["region"] == "eu"
    body = assert_problem(
        await api.client.patch(url, json={"uid": "111111111111"}, headers=editor.headers), 403
    )
    assert "uid" in body["detail"]
    ok = await api.client.patch(url, json={"alias": "c"}, headers=editor.headers)
    assert ok.status_code == 200 and "uid" not in ok.json()
    final = (await api.client.get(url, headers=owner.headers)).json()
    assert (final["uid"], final["region"], final["alias"]) == (p["uid"], "eu", "c")


def test_shaped_types_leave_hidden_fields_out_at_any_depth():
    """A response type shaped by the rules drops the hidden fields of every resource model it
    holds, in lists, optionals, generic pages and dict values; without hidden fields it is the
    type itself (no variant, no cost)."""
    import datetime
    import uuid as _uuid

    from pydantic import BaseModel

    from app.schemas.common import Output, Page
    from app.security.shaping import response_adapter, shaped

    class Secretive(Output):
        __resource__ = "secretive"
        id: _uuid.UUID
        secret: str
        when: datetime.datetime

    class Holder(Output):
        one: Secretive | None
        many: list[Secretive]
        by_key: dict[str, Secretive]

    hidden = frozenset({("secretive", "secret")})
    assert shaped(Page[Holder], frozenset()) is Page[Holder]
    assert issubclass(shaped(Holder, hidden), BaseModel)
    item = {"id": _uuid.uuid4(), "secret": "s3cr3t", "when": datetime.datetime.now(datetime.UTC)}
    value = {"one": item, "many": [item, item], "by_key": {"k": item}}
    for annotation in (Holder, Page[Holder], list[Holder], Holder | None):
        content = {"data": [value]} if annotation is Page[Holder] else value
        if annotation == list[Holder]:
            content = [value]
        adapter = response_adapter(annotation, hidden)
        out = adapter.dump_json(adapter.validate_python(content, from_attributes=True))
        assert b"s3cr3t" not in out and b'"secret"' not in out, annotation
        assert str(item["id"]).encode() in out
        plain = response_adapter(annotation, frozenset())
        assert b"s3cr3t" in plain.dump_json(plain.validate_python(content, from_attributes=True))


def test_every_route_with_a_response_model_answers_through_the_shaping(app):
    """A route class that skipped the shaping would serialize with FastAPI's own validation,
    which knows nothing of field rules: every API route with a response model must shape."""
    from tests.helpers import api_routes

    routes = [
        r
        for r in api_routes(app)
        if getattr(r, "response_field", None) is not None and r.path.startswith(("/ws/", "/api/"))
    ]
    assert len(routes) > 30
    for route in routes:
        assert getattr(route.dependant.call, "shapes_responses", False), route.path
