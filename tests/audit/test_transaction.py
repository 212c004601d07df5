"""The record is part of the call's transaction: no record, no change (and no 2xx); reads
served by a replica still leave their record, on the primary."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.services.audit_chain import seal_pending
from tests.audit.conftest import records
from tests.conftest import make_settings
from tests.helpers import assert_problem, aws_uid


async def test_a_failing_audit_write_undoes_the_call(api, client, ws, admin_engine):
    path = f"{ws.base}/providers"
    async with admin_engine.begin() as conn:
        await conn.execute(
            text(
                f"ALTER TABLE audit_record ADD CONSTRAINT test_refuse CHECK (path <> '{path}') "
                "NOT VALID"
            )
        )
    try:
        r = await client.post(
            path, json={"provider_type": "aws", "uid": aws_uid()}, headers=ws.owner.headers
        )
        assert r.status_code >= 500 or r.status_code == 409
        assert_problem(r)
    finally:
        async with admin_engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_record DROP CONSTRAINT test_refuse"))
    listed = await client.get(path, headers=ws.owner.headers)
    assert listed.json()["data"] == []  # the provider was rolled back with its record


async def test_replica_reads_record_on_the_primary(
    database, servers, api, ws, admin_engine, maintenance_db
):
    settings = make_settings(database, servers, read_database_url=database["runtime_url"])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        read_only = create_async_engine(
            database["runtime_url"],
            connect_args={"server_settings": {"default_transaction_read_only": "on"}},
        )
        old = app.state.db.read_engine
        app.state.db.read_engine = read_only
        await old.dispose()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            login = await c.post(
                "/api/v1/auth/login",
                json={"email": ws.owner.email, "password": "correct horse battery staple"},
            )
            headers = {
                "Authorization": f"Bearer {login.json()['access_token']}",
                "x-request-id": "replica-read-1",
            }
            r = await c.get(f"{ws.base}/providers", headers=headers)
            assert r.status_code == 200, r.text
            w = await c.post(
                f"{ws.base}/providers",
                headers=headers,
                json={"provider_type": "aws", "uid": aws_uid()},
            )
            assert w.status_code == 201  # writes still go to the primary
        await seal_pending(maintenance_db)
    rows = [r for r in await records(admin_engine, ws.id) if r["request_id"] == "replica-read-1"]
    assert [(r["action"], r["resource_type"]) for r in rows] == [
        ("list", "provider"),
        ("create", "provider"),
    ]
