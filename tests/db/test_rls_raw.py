"""RLS as the runtime role, with raw SQL: no context → nothing; a context → that workspace only."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db.tenant import Visibility, context_statement

POPULATED = {
    "workspace",
    "membership",
    "provider",
    "provider_group",
    "provider_group_member",
    "audit_record",
    "idempotency_key",
    "service_key",
    "idp_group_mapping",
    "auth_session",
    "user_event",
}


async def _scoped_tables(admin_engine) -> dict[str, set[str]]:
    """Scoped tables the runtime role reaches (partitions only through their parent)."""
    async with admin_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.table_name, array_agg(c.column_name::text) FROM information_schema.columns c "
                "JOIN pg_class k ON k.relname = c.table_name AND k.relkind IN ('r','p') "
                "AND NOT k.relispartition "
                "WHERE c.table_schema = 'public' GROUP BY c.table_name"
            )
        )
        return {
            name: set(cols)
            for name, cols in rows
            if {"workspace_id", "user_id"} & set(cols) or name == "workspace"
        }


@pytest.fixture
async def two_workspaces(api, admin_engine):
    a, b = await api.user("a"), await api.user("b")
    ws_a, ws_b = await api.workspace(a), await api.workspace(b)
    pa = await api.provider(a, ws_a)
    pb = await api.provider(b, ws_b)
    for user, ws, pid in ((a, ws_a, pa["id"]), (b, ws_b, pb["id"])):
        r = await api.client.post(
            f"/ws/{ws}/api/v1/provider-groups",
            json={"name": "g", "provider_ids": [pid]},
            headers=user.headers,
        )
        assert r.status_code == 201
    for user, ws in ((a, ws_a), (b, ws_b)):  # a stored response of each, per workspace and own
        keyed = {**user.headers, "Idempotency-Key": "rls-raw"}
        r = await api.client.post(
            f"/ws/{ws}/api/v1/providers/search/uid", json=["000000000000"], headers=keyed
        )
        assert r.status_code == 200, r.text
        r = await api.client.post(
            "/api/v1/me/has-permission",
            json={"workspace": ws, "permission": "provider.read"},
            headers=keyed,
        )
        assert r.status_code == 200, r.text
    for user, ws in ((a, ws_a), (b, ws_b)):  # a denial of each user's own
        r = await api.client.get(f"/ws/{ws}/api/v1/providers/{uuid.uuid4()}", headers=user.headers)
        assert r.status_code == 404
    ids = {}
    for user, ws in ((a, ws_a), (b, ws_b)):
        listed = await api.client.get("/api/v1/workspaces", headers=user.headers)
        ids[ws] = next(w["id"] for w in listed.json()["data"] if w["slug"] == ws)
    me_a = (await api.client.get("/api/v1/me", headers=a.headers)).json()["id"]
    me_b = (await api.client.get("/api/v1/me", headers=b.headers)).json()["id"]
    # Identity rows of each: a personal key, a pending TOTP factor, a service key, a group
    # mapping, and (as an IdP sign-in would leave it) an identity at an IdP.
    for user, ws, me in ((a, ws_a, me_a), (b, ws_b, me_b)):
        for path, body in (
            ("/api/v1/me/api-keys", {"name": "k"}),
            ("/api/v1/me/mfa/totp", None),
            (f"/ws/{ws}/api/v1/service-keys", {"name": "svc"}),
            (f"/ws/{ws}/api/v1/idp-groups", {"group": "ops", "role": "viewer"}),
        ):
            r = await api.client.post(path, json=body, headers=user.headers)
            assert r.status_code == 201, r.text
        async with admin_engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO user_identity (user_id, issuer, subject) "
                    "VALUES (:u, 'https://idp.example', :s)"
                ),
                {"u": me, "s": f"sub-{me}"},
            )
    return {"a": (ids[ws_a], me_a), "b": (ids[ws_b], me_b)}


async def test_no_context_sees_nothing_and_writes_nothing(
    runtime_engine, admin_engine, two_workspaces
):
    tables = await _scoped_tables(admin_engine)
    assert {"workspace", "membership", "provider", "auth_session"} <= set(tables)
    async with runtime_engine.connect() as conn:
        for table in tables:
            count = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            assert count == 0, table
        ws_a, _ = two_workspaces["a"]
        with pytest.raises(DBAPIError, match="row-level security"):
            await conn.execute(
                text(
                    "INSERT INTO provider (workspace_id, id, provider_type, uid) "
                    "VALUES (:w, :i, 'aws', '111111111111')"
                ),
                {"w": ws_a, "i": uuid.uuid4()},
            )
        await conn.rollback()


async def _set(conn, statement: str) -> None:
    """Run a SET LOCAL string on the driver, inside the transaction SQLAlchemy opened."""
    await conn.execute(text("SELECT 1"))  # the driver begins its transaction lazily
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw.is_in_transaction()
    await raw.execute(statement)


async def test_context_sees_only_its_workspace(runtime_engine, admin_engine, two_workspaces):
    tables = await _scoped_tables(admin_engine)
    (ws_a, _), (ws_b, user_b) = two_workspaces["a"], two_workspaces["b"]
    async with runtime_engine.connect() as conn:
        async with conn.begin():
            await _set(
                conn, context_statement(uuid.UUID(ws_b), uuid.UUID(user_b), Visibility(True))
            )
            for table, cols in tables.items():
                key = "id" if table == "workspace" else "workspace_id"
                if key in cols:
                    seen = set(
                        (
                            await conn.execute(text(f"SELECT DISTINCT {key}::text FROM {table}"))
                        ).scalars()
                    )
                    assert seen <= {ws_b}, table
                    if table in POPULATED:
                        assert seen == {ws_b}, table
                if "user_id" in cols and "workspace_id" not in cols:
                    seen = set(
                        (
                            await conn.execute(text(f"SELECT DISTINCT user_id::text FROM {table}"))
                        ).scalars()
                    )
                    assert seen <= {user_b}, table
                    if table in POPULATED:
                        assert seen == {user_b}, table
            assert (await conn.execute(text("SELECT count(*) FROM provider"))).scalar() == 1
            # Writing a row for another workspace is refused by WITH CHECK.
            with pytest.raises(DBAPIError, match="row-level security"):
                async with conn.begin_nested():
                    await conn.execute(
                        text(
                            "INSERT INTO provider (workspace_id, id, provider_type, uid) "
                            "VALUES (:w, :i, 'aws', '222222222222')"
                        ),
                        {"w": ws_a, "i": uuid.uuid4()},
                    )
            # Moving B's row into A is refused too (Citus refuses it before RLS: the row would
            # change shards); updating A's rows touches nothing.
            with pytest.raises(
                DBAPIError, match="row-level security|modifying the partition value"
            ):
                async with conn.begin_nested():
                    await conn.execute(text("UPDATE provider SET workspace_id = :w"), {"w": ws_a})
            result = await conn.execute(
                text("UPDATE provider SET alias = 'x' WHERE workspace_id = :w"), {"w": ws_a}
            )
            assert result.rowcount == 0
            result = await conn.execute(
                text("DELETE FROM membership WHERE workspace_id = :w"), {"w": ws_a}
            )
            assert result.rowcount == 0


async def test_empty_or_garbage_setting_fails_closed(runtime_engine, two_workspaces):
    async with runtime_engine.connect() as conn:
        async with conn.begin():
            await _set(conn, "SET LOCAL app.current_workspace_id = ''")
            assert (await conn.execute(text("SELECT count(*) FROM provider"))).scalar() == 0


async def test_context_statement_is_strict():
    good = context_statement(uuid.UUID(int=1), uuid.UUID(int=2))
    assert good == (
        "SET LOCAL app.current_workspace_id = '00000000-0000-0000-0000-000000000001'; "
        "SET LOCAL app.current_user_id = '00000000-0000-0000-0000-000000000002'"
    )
    for bad in ("x'; RESET ALL; --", "00000000-0000-0000-0000-00000000000g"):
        with pytest.raises(ValueError):
            context_statement(bad, uuid.UUID(int=2))  # type: ignore[arg-type]


async def test_runtime_role_cannot_read_password_hashes(runtime_engine):
    async with runtime_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(text("SELECT password_hash FROM app_user"))
        await conn.rollback()
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(text("TRUNCATE provider"))
        await conn.rollback()
        with pytest.raises(DBAPIError, match="must be owner"):
            await conn.execute(text("ALTER TABLE provider DISABLE ROW LEVEL SECURITY"))
        await conn.rollback()
        with pytest.raises(DBAPIError, match="permission denied|must be owner"):
            await conn.execute(text("SET ROLE postgres"))
        await conn.rollback()


async def test_partitions_are_reached_only_through_the_parent(runtime_engine, admin_engine):
    async with admin_engine.connect() as conn:
        partitions = list(
            (
                await conn.execute(
                    text(
                        "SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r' "
                        "AND relnamespace = 'public'::regnamespace"
                    )
                )
            ).scalars()
        )
    assert "finding_default" in partitions and len(partitions) >= 2
    async with runtime_engine.connect() as conn:
        for table in partitions:
            with pytest.raises(DBAPIError, match="permission denied"):
                await conn.execute(text(f"SELECT count(*) FROM {table}"))
            await conn.rollback()
        assert (await conn.execute(text("SELECT count(*) FROM finding"))).scalar() == 0
