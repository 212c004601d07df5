"""`/api/v1/me`, `/api/v1/me/has-permission`, the registry, the README matrix, platform admin."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from app.security.permissions import BUILTIN_ROLES, matrix_markdown
from tests.helpers import Api, assert_problem

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_matrix_is_generated_from_the_registry():
    assert matrix_markdown() in README.read_text(), (
        "README permission matrix is stale: paste app.security.permissions.matrix_markdown()"
    )


async def test_me_lists_memberships_and_permissions(api: Api):
    owner, eng = await api.user("owner"), await api.user("eng")
    slug = await api.workspace(owner)
    await api.add_member(owner, slug, eng, "engineer")
    me = await api.me(eng)
    [m] = me["memberships"]
    assert (m["workspace"], m["role"]) == (slug, "engineer")
    assert set(m["permissions"]) == BUILTIN_ROLES["engineer"]


async def test_has_permission_by_method_and_path(api: Api):
    owner, viewer = await api.user("owner"), await api.user("viewer")
    slug = await api.workspace(owner)
    p = await api.provider(owner, slug)
    await api.add_member(owner, slug, viewer, "viewer")

    async def ask(user, **body):
        r = await api.client.post(
            "/api/v1/me/has-permission", json={"workspace": slug, **body}, headers=user.headers
        )
        assert r.status_code == 200, r.text
        return r.json()

    answer = await ask(viewer, method="DELETE", path=f"/ws/{slug}/api/v1/providers/{p['id']}")
    assert answer == {
        "allowed": False,
        "permission": "provider.delete",
        "reason": "built-in role 'viewer' does not include it",
    }
    answer = await ask(viewer, method="GET", path=f"/ws/{slug}/api/v1/providers")
    assert answer["allowed"] is True and answer["permission"] == "provider.read"
    assert (await ask(owner, method="GET", path=f"/ws/{slug}/api/v1/nothing"))[
        "reason"
    ] == "no such route"
    assert (await ask(owner, permission="made.up"))["allowed"] is False
    stranger = await api.user("stranger")
    assert (await ask(stranger, permission="provider.read"))[
        "reason"
    ] == "you are not a member of this workspace"
    r = await api.client.post(
        "/api/v1/me/has-permission", json={"workspace": slug}, headers=owner.headers
    )
    assert_problem(r, 400)
    r = await api.client.post(
        "/api/v1/me/has-permission",
        json={"workspace": slug, "method": "GET", "path": "/ws/other/api/v1/providers"},
        headers=owner.headers,
    )
    assert_problem(r, 400)


async def test_openapi_names_each_routes_permission(client):
    schema = (await client.get("/openapi.json")).json()
    op = schema["paths"]["/ws/{slug}/api/v1/providers/{provider_id}"]["delete"]
    assert op["x-required-permission"] == "provider.delete"


async def test_permissions_registry_endpoint(client):
    body = (await client.get("/api/v1/permissions")).json()
    keys = {p["key"]: p["roles"] for p in body["permissions"]}
    assert "owner" in keys["workspace.delete"] and "admin" not in keys["workspace.delete"]


async def test_platform_admin_reads_across_workspaces_only_via_platform_routes(
    api: Api, admin_engine, database
):
    a, b, pa = await api.user("a"), await api.user("b"), await api.user("platform")
    ws_a, ws_b = await api.workspace(a), await api.workspace(b)
    await api.provider(b, ws_b)
    await api.provider(b, ws_b)
    assert_problem(await api.client.get("/api/v1/platform/workspaces", headers=pa.headers), 403)
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE app_user SET is_platform_admin = true WHERE email = :e"), {"e": pa.email}
        )
    r = await api.client.get("/api/v1/platform/workspaces", headers=pa.headers)
    assert r.status_code == 200, r.text
    rows = {w["slug"]: w for w in r.json()["data"]}
    assert rows[ws_b]["provider_count"] == 2 and rows[ws_b]["member_count"] == 1
    assert rows[ws_a]["provider_count"] == 0
    # The same user gets nothing through workspace routes without a membership.
    assert_problem(await api.client.get(f"/ws/{ws_b}/api/v1/providers", headers=pa.headers), 404)
    # The function's owner can read but never write.
    async with admin_engine.connect() as conn:
        privileges = (
            await conn.execute(
                text(
                    "SELECT has_table_privilege(:r, 'provider', 'SELECT'), "
                    "has_table_privilege(:r, 'provider', 'UPDATE'), has_table_privilege(:r, 'provider', 'DELETE'), "
                    "has_table_privilege(:r, 'provider', 'INSERT')"
                ),
                {"r": database["platform_role"]},
            )
        ).one()
    assert tuple(privileges) == (True, False, False, False)
