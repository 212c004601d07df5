"""Retention: per-workspace days, expired records removed in batches from the start of the
chain, the cut recorded so the chain still verifies; personal logs expire too."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from app.services.audit_chain import apply_retention, seal_pending
from tests.audit.conftest import records, shift_created_at, verify
from tests.helpers import assert_problem


async def _backdate(admin_engine, ws, ids, days: int) -> None:
    async with admin_engine.begin() as conn:
        await shift_created_at(conn, ws.id, ids, -timedelta(days=days))


async def _set_days(client, ws, days) -> None:
    r = await client.patch(
        f"{ws.base}/settings", json={"audit_retention_days": days}, headers=ws.owner.headers
    )
    assert r.status_code == 200 and r.json()["audit_retention_days"] == days, r.text


async def test_expired_prefix_is_cut_in_batches_and_the_chain_still_verifies(
    api, client, app, ws, admin_engine, maintenance_db
):
    maker = maintenance_db
    for i in range(6):
        await api.provider(ws.owner, ws.slug, alias=f"p{i}")
    old = [r["id"] for r in await records(admin_engine, ws.id)][:4]
    await _backdate(admin_engine, ws, old, 40)  # before sealing: the hash covers the new time
    await _set_days(client, ws, 30)
    await seal_pending(maker)
    result = await apply_retention(maker, batch_size=3)
    mine = [(w, s) for w, s in result.cuts if w == ws.id]
    assert mine == [(ws.id, 3), (ws.id, 4)]
    remaining = await records(admin_engine, ws.id)
    assert not {r["id"] for r in remaining} & set(old)
    check = await verify(client, ws)
    assert check["ok"], check
    assert check["first_seq"] == 5
    assert check["cut"]["up_to_seq"] == 4
    listed = (
        await client.get(f"{ws.base}/audit", params={"limit": 200}, headers=ws.owner.headers)
    ).json()["data"]
    assert not {r["id"] for r in listed} & {str(i) for i in old}
    # the chain goes on from the cut
    await api.provider(ws.owner, ws.slug, alias="later")
    await seal_pending(maker)
    assert (await verify(client, ws))["ok"]
    again = await apply_retention(maker)
    assert all(w != ws.id for w, _ in again.cuts)


async def test_a_chain_cut_entirely_continues_from_the_cut(
    api, client, app, ws, admin_engine, maintenance_db
):
    maker = maintenance_db
    await api.provider(ws.owner, ws.slug)
    await _set_days(client, ws, 1)
    await seal_pending(maker)
    await _backdate_sealed(admin_engine, ws)
    await apply_retention(maker)
    assert [r for r in await records(admin_engine, ws.id) if r["seq"]] == []
    await api.provider(ws.owner, ws.slug)
    await seal_pending(maker)
    check = await verify(client, ws)
    assert check["ok"] and check["first_seq"] == check["cut"]["up_to_seq"] + 1


async def _backdate_sealed(admin_engine, ws) -> None:
    """Age sealed records without breaking them: rewrite and re-hash the whole chain (what an
    owner could do; here it only stands in for time passing)."""
    ids = [r["id"] for r in await records(admin_engine, ws.id)]
    async with admin_engine.begin() as conn:
        await shift_created_at(conn, ws.id, ids, -timedelta(days=10))
        await conn.execute(
            text(
                "UPDATE audit_record SET hash = NULL, prev_hash = NULL, seq = NULL "
                "WHERE workspace_id = :w"
            ),
            {"w": ws.id},
        )
    # Its own transaction: on Citus the sealer (another role) may not touch shards this
    # transaction changed.
    async with admin_engine.begin() as conn:
        await conn.execute(text("SELECT * FROM warden_audit_seal(1000)"))


async def test_unsealed_and_unexpired_records_stay(
    api, client, app, ws, admin_engine, maintenance_db
):
    maker = maintenance_db
    await api.provider(ws.owner, ws.slug)
    await _set_days(client, ws, 30)
    ids = [r["id"] for r in await records(admin_engine, ws.id)]
    await _backdate(admin_engine, ws, ids, 40)
    await apply_retention(maker)  # nothing sealed yet: nothing removed
    assert {r["id"] for r in await records(admin_engine, ws.id)} >= set(ids)
    await _set_days(client, ws, None)
    await seal_pending(maker)
    await apply_retention(maker)  # kept forever now
    assert {r["id"] for r in await records(admin_engine, ws.id)} >= set(ids)


async def test_personal_logs_expire(api, client, app, admin_engine, maintenance_db):
    user = await api.user("old")
    r = await client.get("/ws/nowhere/api/v1/providers", headers=user.headers)
    assert r.status_code == 404
    me = await api.me(user)
    async with admin_engine.begin() as conn:
        for table in ("user_event", "audit_denial"):
            await conn.execute(
                text(
                    f"UPDATE {table} SET created_at = now() - interval '400 days' WHERE user_id = :u"
                ),
                {"u": me["id"]},
            )
    await client.get("/api/v1/me", headers=user.headers)
    async with admin_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE user_event SET created_at = now() - interval '10 days' WHERE user_id = :u "
                "AND action = 'me' AND created_at > now() - interval '1 day'"
            ),
            {"u": me["id"]},
        )
    # asking for 1 day keeps 30: the runtime role cannot wipe recent evidence
    await apply_retention(maintenance_db, personal_days=1)
    events = (await client.get("/api/v1/me/events", headers=user.headers)).json()["data"]
    assert [e["action"] for e in events] == ["me"]  # the old register/login/me are gone
    denials = (await client.get("/api/v1/me/denials", headers=user.headers)).json()["data"]
    assert denials == []


async def test_retention_setting_is_guarded(api, client, ws):
    engineer = await api.user("engineer")
    await api.add_member(ws.owner, ws.slug, engineer, "engineer")
    r = await client.patch(
        f"{ws.base}/settings", json={"audit_retention_days": 1}, headers=engineer.headers
    )
    assert_problem(r, 403)
    got = await client.get(f"{ws.base}/settings", headers=engineer.headers)
    assert got.status_code == 200 and got.json()["audit_retention_days"] == 365
    for bad in (0, -5, 36501, "ten"):
        r = await client.patch(
            f"{ws.base}/settings", json={"audit_retention_days": bad}, headers=ws.owner.headers
        )
        assert_problem(r, 422)
    r = await client.patch(f"{ws.base}/settings", json={"slug": "x"}, headers=ws.owner.headers)
    assert_problem(r, 422)
