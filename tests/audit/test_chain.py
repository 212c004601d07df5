"""The hash chain: sealing after commit, verification, tampering detected, concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.db.models import AuditRecord
from app.db.roles import RUNTIME_COLUMN_PRIVILEGES, RUNTIME_TABLE_PRIVILEGES
from app.db.tenant import context_statement
from app.services.audit_chain import seal_pending
from tests.audit.conftest import records, verify
from tests.helpers import aws_uid


async def _calls(api, ws, n: int) -> None:
    for i in range(n):
        await api.provider(ws.owner, ws.slug, alias=f"p{i}")


async def test_records_are_sealed_after_commit_and_verify(
    api, client, app, ws, admin_engine, maintenance_db
):
    await _calls(api, ws, 3)
    before = await verify(client, ws)
    assert before["unsealed"] >= 3 and before["sealed"] == 0 and before["ok"]
    assert await seal_pending(maintenance_db) >= 3
    rows = await records(admin_engine, ws.id)
    sealed = [r for r in rows if r["seq"] is not None]
    assert [r["seq"] for r in sealed] == list(range(1, len(sealed) + 1))
    assert sealed[0]["prev_hash"] is None
    for prev, cur in zip(sealed, sealed[1:], strict=False):
        assert cur["prev_hash"] == prev["hash"]
    # the hash is sha256 over the canonical content and the previous hash, as documented
    async with admin_engine.connect() as conn:
        canonical = (
            await conn.execute(
                text(
                    "SELECT warden_audit_canonical(to_jsonb(a)) FROM audit_record a "
                    "WHERE a.workspace_id = :w AND a.seq = 2"
                ),
                {"w": ws.id},
            )
        ).scalar_one()
    assert hashlib.sha256(canonical.encode() + sealed[0]["hash"]).digest() == sealed[1]["hash"]
    after = await verify(client, ws)
    assert after["ok"] and after["first_broken"] is None
    assert after["sealed"] == len(sealed) and after["first_seq"] == 1
    assert after["head"] == {"seq": len(sealed), "hash": sealed[-1]["hash"].hex()}
    assert after["unsealed"] == 0  # a call's own record is added after its answer


@pytest.mark.parametrize(
    "tamper,reason",
    [
        (
            'UPDATE audit_record SET body = \'{"alias": "innocent"}\' WHERE {row}',
            "content does not match its hash",
        ),
        (
            "UPDATE audit_record SET user_id = :other WHERE {row}",
            "content does not match its hash",
        ),
        (
            "UPDATE audit_record SET created_at = :earlier WHERE {row}",
            "content does not match its hash",
        ),
        (
            "UPDATE audit_record SET action = 'get' WHERE {row};;REHASH",
            "NEXT:does not link to the previous record's hash",
        ),
        ("DELETE FROM audit_record WHERE {row}", "NEXT:records are missing"),
        ("UPDATE audit_record SET seq = seq + 1000 WHERE {row}", "NEXT:records are missing"),
    ],
)
async def test_tampering_as_the_owner_is_reported(
    tamper, reason, api, client, app, ws, admin_engine, maintenance_db
):
    """The owner role can change anything; verification still names the first broken link."""
    await _calls(api, ws, 4)
    await seal_pending(maintenance_db)
    rows = [r for r in await records(admin_engine, ws.id) if r["seq"] is not None]
    target = rows[2]
    async with admin_engine.begin() as conn:
        for statement in tamper.split(";;"):
            if statement == "REHASH":  # the record's hash made to match its new content
                await _rehash(conn, ws.id, target["id"])
                continue
            await conn.execute(
                text(statement.replace("{row}", "workspace_id = :w AND id = :i")),
                {
                    "w": ws.id,
                    "i": target["id"],
                    "other": uuid.uuid4(),
                    "earlier": target["created_at"] - timedelta(days=1),
                },
            )
    result = await verify(client, ws)
    assert result["ok"] is False
    expected = rows[3] if reason.startswith("NEXT:") else target
    assert result["first_broken"]["id"] == str(expected["id"])
    assert reason.removeprefix("NEXT:") in result["first_broken"]["reason"]


async def _rehash(conn, workspace_id, record_id) -> None:
    row = (
        await conn.execute(
            text(
                "SELECT warden_audit_canonical(to_jsonb(a)) AS canonical, a.prev_hash "
                "FROM audit_record a WHERE a.workspace_id = :w AND a.id = :i"
            ),
            {"w": workspace_id, "i": record_id},
        )
    ).one()
    digest = hashlib.sha256(row.canonical.encode() + (row.prev_hash or b"")).digest()
    await conn.execute(
        text("UPDATE audit_record SET hash = :h WHERE workspace_id = :w AND id = :i"),
        {"h": digest, "w": workspace_id, "i": record_id},
    )


async def test_tampering_in_one_workspace_does_not_mark_another(
    api, client, app, ws, admin_engine, maintenance_db
):
    other_owner = await api.user("other")
    other_slug = await api.workspace(other_owner)
    await api.provider(other_owner, other_slug)
    await _calls(api, ws, 2)
    await seal_pending(maintenance_db)
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit_record SET status = 418 WHERE workspace_id = :w"), {"w": ws.id}
        )
    assert (await verify(client, ws))["ok"] is False
    r = await client.get(f"/ws/{other_slug}/api/v1/audit/verify", headers=other_owner.headers)
    assert r.json()["ok"] is True and r.json()["sealed"] >= 1


async def test_sealers_and_requests_run_concurrently(
    api, client, app, ws, admin_engine, maintenance_db
):
    """Requests of one workspace never wait for the chain: many run at once while two sealers
    work; afterwards the chain is complete, gapless and verifies."""
    maker = maintenance_db

    async def create(i: int) -> int:
        r = await client.post(
            f"{ws.base}/providers",
            headers=ws.owner.headers,
            json={"provider_type": "aws", "uid": aws_uid()},
        )
        return r.status_code

    async def seal_loop() -> None:
        for _ in range(5):
            await seal_pending(maker, batch_size=3)
            await asyncio.sleep(0)

    results = await asyncio.gather(*(create(i) for i in range(24)), seal_loop(), seal_loop())
    assert results[:24] == [201] * 24
    await seal_pending(maker)
    rows = await records(admin_engine, ws.id)
    assert all(r["hash"] is not None for r in rows)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    result = await verify(client, ws)
    assert result["ok"] and result["sealed"] == len(rows) and result["unsealed"] == 0


async def test_a_busy_chain_neither_blocks_requests_nor_other_sealers(
    api, client, app, ws, maintenance_engine, maintenance_db
):
    """While one sealer holds a workspace's chain (its transaction still open), a request on
    that workspace commits at once and a second sealer skips the workspace instead of
    waiting."""
    await _calls(api, ws, 2)
    async with maintenance_engine.connect() as conn:
        trans = await conn.begin()
        held = (await conn.execute(text("SELECT sum(sealed) FROM warden_audit_seal(100)"))).scalar()
        assert held >= 2
        r = await asyncio.wait_for(
            client.post(
                f"{ws.base}/providers",
                headers=ws.owner.headers,
                json={"provider_type": "aws", "uid": aws_uid()},
            ),
            timeout=5,
        )
        assert r.status_code == 201
        sealed = await asyncio.wait_for(seal_pending(maintenance_db), timeout=5)
        pending = (await verify(client, ws))["unsealed"]
        assert pending >= 1  # our workspace was skipped (other workspaces may have been sealed)
        await trans.commit()
    assert sealed >= 0
    await seal_pending(maintenance_db)
    result = await verify(client, ws)
    assert result["ok"] and result["unsealed"] == 0


async def test_runtime_role_cannot_change_or_remove_records(api, ws, runtime_engine):
    """Append-only for the app's own role, even inside the workspace's context."""
    await _calls(api, ws, 1)
    user_id = ws.owner.id or (await api.me(ws.owner))["id"]
    statements = [
        "UPDATE audit_record SET body = '{}'",
        "UPDATE audit_record SET hash = '\\x00'::bytea",
        "DELETE FROM audit_record",
        "TRUNCATE audit_record",
        "INSERT INTO audit_record (workspace_id, id, user_id, action, method, path, status, "
        "hash) VALUES (:w, gen_random_uuid(), :u, 'x', 'GET', '/', 200, '\\x00'::bytea)",
        "INSERT INTO audit_cut (workspace_id, up_to_seq, last_hash, removed) "
        "VALUES (:w, 1, '\\x00'::bytea, 1)",
        "DELETE FROM audit_cut",
        "INSERT INTO audit_denial (id, user_id, status, reason, method, path) "
        "VALUES (gen_random_uuid(), :u, 404, 'x', 'GET', '/')",
        "DELETE FROM audit_denial",
        "UPDATE user_event SET action = 'x'",
        "DELETE FROM user_event",
    ]
    for statement in statements:
        async with runtime_engine.connect() as conn:
            async with conn.begin():
                raw = (await conn.get_raw_connection()).driver_connection
                await conn.execute(text("SELECT 1"))
                await raw.execute(context_statement(ws.id, user_id))
                with pytest.raises(Exception, match="permission denied"):
                    await conn.execute(text(statement), {"w": ws.id, "u": user_id})


def test_runtime_may_insert_every_content_column_and_no_chain_column():
    """A column added to audit_record must be added to the runtime's INSERT list (or requests
    fail); the chain columns must never be on it, nor the id and the time (the database's)."""
    chain = {"seq", "prev_hash", "hash", "sealed_at"}
    insertable = set(RUNTIME_COLUMN_PRIVILEGES["audit_record"]["INSERT"])
    assert insertable == set(AuditRecord.__table__.columns.keys()) - chain - {"id", "created_at"}
    assert "INSERT" not in RUNTIME_TABLE_PRIVILEGES["audit_record"]


async def test_the_definer_may_touch_only_the_chain_columns(admin_engine, database):
    definer = database["definer_role"]
    async with admin_engine.connect() as conn:

        def can(column: str, privilege: str) -> str:
            return f"has_column_privilege('{definer}', 'audit_record', '{column}', '{privilege}')"

        row = (
            await conn.execute(
                text(
                    f"SELECT {can('hash', 'UPDATE')}, {can('seq', 'UPDATE')}, {can('body', 'UPDATE')}, "
                    f"{can('created_at', 'UPDATE')}, has_table_privilege('{definer}', 'audit_record', "
                    "'UPDATE'), has_table_privilege(:r, 'audit_record', 'UPDATE'), "
                    "has_table_privilege(:r, 'audit_record', 'DELETE')"
                ),
                {"r": database["runtime_role"]},
            )
        ).one()
    assert tuple(row) == (True, True, False, False, False, False, False)
