"""The scoped session: no leak across pooled connections, commit before response, one caller."""

from __future__ import annotations

import ast
import asyncio
import pathlib

import httpx
import pytest
from sqlalchemy import text

from app.main import UnsafeDatabaseRole, create_app
from app.security.deps import get_workspace_session
from tests.conftest import make_settings
from tests.helpers import Api, api_routes

ROOT = pathlib.Path(__file__).resolve().parents[2]


async def test_pool_reuse_leaks_no_context(database, servers):
    settings = make_settings(database, servers, db_pool_size=1, db_max_overflow=0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client)
            a, b = await api.user("a"), await api.user("b")
            ws_a, ws_b = await api.workspace(a), await api.workspace(b)
            pa = await api.provider(a, ws_a)
            r = await client.get(f"/ws/{ws_a}/api/v1/providers", headers=a.headers)
            assert [p["id"] for p in r.json()["data"]] == [pa["id"]]
            r = await client.get(f"/ws/{ws_b}/api/v1/providers", headers=b.headers)
            assert r.status_code == 200 and r.json()["data"] == []
        assert app.state.db.engine.pool.size() == 1
        async with app.state.db.engine.connect() as conn:
            settings_now = (
                await conn.execute(
                    text(
                        "SELECT coalesce(current_setting('app.current_workspace_id', true), ''), "
                        "coalesce(current_setting('app.current_user_id', true), '')"
                    )
                )
            ).one()
            assert tuple(settings_now) == ("", "")
            assert (await conn.execute(text("SELECT count(*) FROM provider"))).scalar() == 0


async def test_failing_commit_is_never_a_success(api, client, admin_engine, database):
    """A deferred constraint fails at COMMIT; the response must not be 2xx, and nothing stays."""
    if database["citus"]:
        pytest.skip(
            "the failure at COMMIT is made by a trigger, which Citus refuses on distributed tables"
        )
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("""
            CREATE FUNCTION test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.alias = 'fail-at-commit' THEN
                    RAISE EXCEPTION 'deferred failure' USING ERRCODE = '40001';
                END IF;
                RETURN NEW;
            END $$""")
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON provider "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_at_commit()"
            )
        )
    try:
        r = await client.post(
            f"/ws/{slug}/api/v1/providers",
            json={"provider_type": "aws", "uid": "999999999999", "alias": "fail-at-commit"},
            headers=owner.headers,
        )
        assert r.status_code >= 500 or r.status_code == 409, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "deferred failure" not in r.text
        listed = await client.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
        assert listed.json()["data"] == []
    finally:
        async with admin_engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_fail_at_commit ON provider"))
            await conn.execute(text("DROP FUNCTION test_fail_at_commit()"))


def _dependency_calls(dependant, out):
    for dep in dependant.dependencies:
        out.append(dep)
        _dependency_calls(dep, out)
    return out


def test_every_workspace_route_is_scoped_and_permissioned(app):
    routes = [r for r in api_routes(app) if r.path.startswith("/ws/")]
    assert routes, "no workspace routes found"
    for route in routes:
        assert route.path.startswith("/ws/{slug}/api/v1/"), route.path
        deps = _dependency_calls(route.dependant, [])
        scoped = [d for d in deps if d.call is get_workspace_session]
        assert scoped, f"{route.path} lacks get_workspace_session"
        assert all(d.scope == "function" for d in scoped), (
            f"{route.path}: session must commit before the response"
        )
        permissions = [getattr(d.call, "required_permission", None) for d in deps]
        assert any(permissions), f"{route.path} {route.methods} declares no permission"


def test_meta_test_catches_an_unscoped_route(app):
    """The meta-test above is not vacuous: an unscoped route added under /ws fails it."""
    from fastapi import FastAPI

    rogue = FastAPI()

    @rogue.get("/ws/{slug}/api/v1/rogue")
    async def rogue_route(slug: str) -> dict:
        return {}

    with pytest.raises(AssertionError, match="lacks get_workspace_session"):
        test_every_workspace_route_is_scoped_and_permissioned(rogue)


def test_only_known_modules_set_the_tenant_context():
    """`apply_context` / the SET LOCAL string are used only by the one workspace-context
    function, the session dependencies (user context only), the auth service (after credentials
    are verified, user context only), the worker wrapper (its bookkeeping) and the outbox relay
    (marking the rows a committed transaction wrote as sent, in that transaction's workspace and
    user context); a workspace is entered (`enter_workspace`) only by the request dependency
    and the job wrapper."""
    allowed = {
        "app/db/tenant.py",
        "app/security/principal.py",
        "app/security/deps.py",
        "app/services/auth.py",
        "app/services/outbox.py",
        "workers/context.py",
        # `warden audit verify`: an operator's check of each workspace's chain, with no user.
        "app/audit_cli.py",
    }
    entering = {"app/security/principal.py", "app/security/deps.py", "workers/context.py"}
    offenders = []
    for path in list((ROOT / "app").rglob("*.py")) + list((ROOT / "workers").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text())
        printed = {
            id(c)
            for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "print"
            for c in ast.walk(call)
        }
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
        }
        sql = [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and id(n) not in printed
            and ("SET LOCAL app." in n.value or "set_config" in n.value)
        ]
        if ({"apply_context", "context_statement"} & names or sql) and rel not in allowed:
            offenders.append(rel)
        if "enter_workspace" in names and rel not in entering:
            offenders.append(rel)
    assert offenders == []


async def test_serve_refuses_an_unsafe_role(database, servers):
    """Connected as a superuser (the admin URL here), the app refuses to start."""
    settings = make_settings(database, servers)
    settings = settings.model_copy(update={"database_url": database["admin_url"]})
    app = create_app(settings)
    with pytest.raises(UnsafeDatabaseRole, match="superuser"):
        async with app.router.lifespan_context(app):
            pass


async def test_a_connection_closed_by_the_server_is_replaced(database, servers, admin_engine):
    """No pre-ping round trip: a pooled connection the server ended (restart, failover,
    pg_terminate_backend) is noticed at checkout and replaced; the request still succeeds."""
    settings = make_settings(database, servers, db_pool_size=1, db_max_overflow=0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client)
            user = await api.user("terminated")
            slug = await api.workspace(user)
            r = await client.get(f"/ws/{slug}/api/v1/providers", headers=user.headers)
            assert r.status_code == 200
            # Only this app's pooled connection: other tests' pools share the role.
            async with app.state.db.engine.connect() as own:
                pid = (await own.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with admin_engine.connect() as conn:
                ended = await conn.execute(
                    text("SELECT pg_terminate_backend(CAST(:pid AS integer))"), {"pid": pid}
                )
                assert ended.scalar_one() is True  # the pooled connection was there, and is gone
            await asyncio.sleep(0.2)  # the loop sees the server's EOF
            r = await client.get(f"/ws/{slug}/api/v1/providers", headers=user.headers)
            assert r.status_code == 200, r.text
