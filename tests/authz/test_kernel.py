"""Meta-tests of the authorization kernel: one principal for requests and jobs, every table
declares its provider link, every response model names its resource, and the explainer is the
permission check."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import DeclarativeBase

from app.db.base import NO_PROVIDER, ScopedEntity, scoped_entities
from app.db.models import Provider
from app.security.deps import load_principal
from app.security.principal import MEMBER_CONTEXT_SQL, UserPrincipal, principal_from_row
from app.security.tokens import decode_access_token
from tests.helpers import Api, api_routes


async def _members(api: Api, client) -> tuple[str, list[Any]]:
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    p = await api.provider(owner, slug, region="eu")
    group = await api.group(owner, slug, provider_ids=[p["id"]])
    base = f"/ws/{slug}/api/v1"
    members = [owner]
    for role in ("admin", "approver", "engineer", "viewer"):
        user = await api.user(role)
        await api.add_member(owner, slug, user, role)
        members.append(user)
    for body in (
        {"name": "c1", "inherits_from": "viewer", "grants": ["audit.read", "scan.create"]},
        {
            "name": "c2",
            "inherits_from": "engineer",
            "revokes": ["unlimited_visibility", "provider.delete"],
            "provider_group_ids": [group["id"]],
        },
    ):
        r = await client.post(f"{base}/roles", json=body, headers=owner.headers)
        user = await api.user(body["name"])
        await api.add_member(owner, slug, user, r.json()["id"])
        members.append(user)
    viewer_id = (await api.me(members[4]))["id"]
    r = await client.patch(
        f"{base}/members/{viewer_id}",
        json={"attributes": {"region": ["eu", "us"]}},
        headers=owner.headers,
    )
    assert r.status_code == 200
    return slug, members


async def test_a_job_and_a_request_build_the_same_principal(api, client, app, settings):
    """The request path (session lookup by slug) and the job path (membership by workspace id)
    give equal principals — role, permissions, visibility, attributes, row criteria, field
    rules — for built-in roles, custom roles, limited visibility and attributes."""
    slug, members = await _members(api, client)
    db = app.state.db
    for user in members:
        claims = decode_access_token(settings, user.access_token)
        async with db.transaction() as tx:
            request = await load_principal(
                tx, UserPrincipal(claims.user_id, claims.family_id), slug
            )
        assert request is not None
        async with db.transaction() as tx:
            row = await tx.lookup(MEMBER_CONTEXT_SQL, claims.user_id, request.workspace_id)
            job = principal_from_row(claims.user_id, request.workspace_id, row)
        assert job == request
        assert job.permissions == request.permissions
        assert job.visibility == request.visibility
        assert job.rows[0] == request.rows[0]
        assert dict(job.field_rules) == dict(request.field_rules)


def test_a_table_without_its_provider_link_is_refused():
    class Base(DeclarativeBase):
        pass

    with pytest.raises(TypeError, match="how it relates to a provider"):

        class Orphan(ScopedEntity, Base):  # noqa: F841 - defining it is the test
            __tablename__ = "orphan"

    class Declared(ScopedEntity, Base):
        __tablename__ = "declared"
        __provider__ = NO_PROVIDER

    assert Declared.__resource__ == "declared"


def test_every_scoped_table_declares_its_link():
    entities = scoped_entities()
    assert Provider in entities and len(entities) >= 10
    for entity in entities:
        assert "__provider__" in entity.__dict__, entity
        link = entity.__provider__
        if link.column:
            assert link.column in entity.__table__.columns, entity  # type: ignore[attr-defined]
        for field, columns in entity.__embeds__.items():
            assert field in Provider.__table__.columns, (entity, field)
            assert set(columns) <= set(entity.__table__.columns.keys()), entity  # type: ignore[attr-defined]


def test_every_workspace_response_names_its_resource(app):
    """Field rules and masking are applied by the resource a response model names: a model
    that names none would be served unshaped."""
    from typing import get_args

    from app.schemas.common import Output

    missing = []
    for route in api_routes(app):
        if not route.path.startswith("/ws/"):
            continue
        model = route.response_model
        item = (
            get_args(model.model_fields["data"].annotation)[0]
            if "data" in getattr(model, "model_fields", {})
            else model
        )
        if isinstance(item, type) and issubclass(item, Output) and item.__resource__ is None:
            missing.append((route.path, item.__name__))
    assert missing == []


async def test_has_permission_is_the_check_itself(api, client):
    """For every member and every workspace route, `/me/has-permission` answers exactly what
    the route does: allowed ⇔ not 403."""
    slug, members = await _members(api, client)
    routes = [
        ("GET", "providers"),
        ("POST", "providers"),
        ("GET", "audit"),
        ("GET", "scans"),
        ("GET", "members"),
        ("POST", "roles"),
        ("GET", "settings"),
        ("PATCH", "settings"),
    ]
    bodies = {"POST providers": {}, "POST roles": {}, "PATCH settings": {}}
    for user in members:
        for method, collection in routes:
            path = f"/ws/{slug}/api/v1/{collection}"
            explained = await client.post(
                "/api/v1/me/has-permission",
                json={"workspace": slug, "method": method, "path": path},
                headers=user.headers,
            )
            assert explained.status_code == 200, explained.text
            body = bodies.get(f"{method} {collection}")
            actual = await client.request(method, path, json=body, headers=user.headers)
            allowed = explained.json()["allowed"]
            assert allowed == (actual.status_code != 403), (method, path, actual.text)
