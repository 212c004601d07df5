"""The trail against a compromised app process (the runtime role, with any context it likes),
a workspace owner, and whoever rewrites the database: what is refused, and what `verify`
(HTTP, and the CLI against exported anchors) reports."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from app.cli import main
from app.db.migrate import PURGE_GRACE_FUNCTIONS
from app.services.audit_chain import apply_retention, seal_pending
from tests.audit.conftest import records, shift_created_at, verify
from tests.helpers import run_jobs
from workers.settings import maintenance_database

VERIFY_LOCK = 74112


async def _calls(api, ws, n: int) -> None:
    for i in range(n):
        await api.provider(ws.owner, ws.slug, alias=f"p{i}")


async def _seal(app) -> int:
    """What the worker's cron does: seal as the maintenance role, sign and publish the heads."""
    state = app.state
    db = maintenance_database(state.settings)
    try:
        return await seal_pending(db, settings=state.settings, redis=state.redis)
    finally:
        await db.dispose()


async def _user_id(api, user) -> str:
    return user.id or (await api.me(user))["id"]


@asynccontextmanager
async def attacker(runtime_engine, workspace_id: Any, user_id: Any) -> AsyncIterator[Any]:
    """A raw runtime-role transaction with the context settings an attacker chooses."""
    async with runtime_engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text("SELECT 1"))
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute(
                f"SET LOCAL app.current_workspace_id = '{workspace_id}'; "
                f"SET LOCAL app.current_user_id = '{user_id}'"
            )
            yield conn


async def _refused(runtime_engine, ws_id, user_id, sql: str, params: dict[str, Any], match: str):
    async with attacker(runtime_engine, ws_id, user_id) as conn:
        with pytest.raises(Exception, match=match):
            await conn.execute(text(sql), params)


@pytest.fixture
def cli_env(monkeypatch, settings):
    """The CLI's settings: the app's database role, Redis and secret."""
    monkeypatch.setenv("WARDEN_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("WARDEN_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("WARDEN_JWT_SECRET", settings.jwt_secret.get_secret_value())
    monkeypatch.setenv("WARDEN_REDIS_KEY_PREFIX", settings.redis_key_prefix)
    monkeypatch.setenv("WARDEN_ENVIRONMENT", "test")


async def _cli(capsys, *argv: str) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out = capsys.readouterr().out
    return code, [orjson.loads(line) for line in out.splitlines() if line.strip()]


async def _export(capsys, tmp_path, ws) -> Any:
    code, anchors = await _cli(capsys, "audit", "anchor", "--workspace", ws.slug)
    assert code == 0 and len(anchors) == 1 and anchors[0]["workspace_id"] == str(ws.id)
    path = tmp_path / "anchors.jsonl"
    path.write_text("".join(orjson.dumps(a).decode() + "\n" for a in anchors))
    return path


# The compromised process: forging, rewriting, erasing.


async def test_the_runtime_role_cannot_forge_or_rewrite_records(
    api, app, ws, runtime_engine, admin_engine
):
    await _calls(api, ws, 2)
    await _seal(app)
    owner_id = await _user_id(api, ws.owner)
    other = await api.user("other")
    other_id = await _user_id(api, other)
    backdated = datetime(2020, 1, 1, tzinfo=UTC)
    params = {"w": ws.id, "u": owner_id, "o": other_id, "t": backdated}
    for sql in (
        # A chosen id or time: no INSERT on those columns.
        "INSERT INTO audit_record (workspace_id, id, user_id, created_at, action, method, path, "
        "status) VALUES (:w, '00000000-0000-7000-8000-000000000001', :u, :t, 'x', 'GET', '/', 200)",
        "INSERT INTO audit_record (workspace_id, id, user_id, action, method, path, status) "
        "VALUES (:w, '00000000-0000-7000-8000-000000000001', :u, 'x', 'GET', '/', 200)",
        "UPDATE audit_record SET body = '{}' WHERE workspace_id = :w",
        "DELETE FROM audit_record WHERE workspace_id = :w",
        "UPDATE audit_head SET seq = 0 WHERE workspace_id = :w",
        "DELETE FROM audit_head WHERE workspace_id = :w",
        "INSERT INTO user_event (user_id, id, created_at, action, method, path, status) "
        "VALUES (:u, gen_random_uuid(), :t, 'login', 'POST', '/', 200)",
        "UPDATE workspace SET deleted_at = now() WHERE id = :w",
    ):
        await _refused(runtime_engine, ws.id, owner_id, sql, params, "permission denied")
    # Another user than the one in context: refused, for a record and for an event.
    await _refused(
        runtime_engine,
        ws.id,
        owner_id,
        "INSERT INTO audit_record (workspace_id, user_id, action, method, path, status) "
        "VALUES (:w, :o, 'x', 'GET', '/', 200)",
        params,
        "written by the user in context",
    )
    await _refused(
        runtime_engine,
        ws.id,
        owner_id,
        "INSERT INTO user_event (user_id, action, method, path, status) "
        "VALUES (:o, 'login', 'POST', '/', 200)",
        params,
        "row-level security|written by the user in context",
    )
    # The user in context: written, with the database's id and time.
    async with attacker(runtime_engine, ws.id, owner_id) as conn:
        await conn.execute(
            text(
                "INSERT INTO audit_record (workspace_id, user_id, action, method, path, status) "
                "VALUES (:w, :u, 'forged', 'GET', '/', 200)"
            ),
            params,
        )
    row = next(r for r in await records(admin_engine, ws.id) if r["action"] == "forged")
    assert row["created_at"] > datetime.now(UTC) - timedelta(minutes=5)
    assert str(row["user_id"]) == owner_id and row["id"].version == 7


@asynccontextmanager
async def grace(admin_engine, hours: int) -> AsyncIterator[None]:
    """The installation's purge grace period (as `warden migrate` sets it), for one test."""

    async def set_to(value: int) -> None:
        async with admin_engine.begin() as conn:
            for fn in PURGE_GRACE_FUNCTIONS:
                await conn.execute(
                    text(f"ALTER FUNCTION {fn} SET warden.audit_purge_grace = '{value} hours'")
                )

    await set_to(hours)
    try:
        yield
    finally:
        await set_to(0)


async def test_mark_purge_unmark_cannot_erase_a_live_trail(
    api, client, app, ws, settings, runtime_engine, admin_engine
):
    await _calls(api, ws, 3)
    await _seal(app)
    before = await records(admin_engine, ws.id)
    owner_id = await _user_id(api, ws.owner)
    purge = "SELECT warden_purge_audit(:w, 1000)"
    async with grace(admin_engine, 24):
        # Not marked: refused. The mark cannot be set or cleared by hand.
        await _refused(runtime_engine, ws.id, owner_id, purge, {"w": ws.id}, "not being deleted")
        await _refused(
            runtime_engine,
            ws.id,
            owner_id,
            "UPDATE workspace SET deleted_at = now() - interval '30 days' WHERE id = :w",
            {"w": ws.id},
            "permission denied",
        )
        # Marked through the one function: the workspace is gone for good (404), and its
        # trail is kept through the grace period.
        async with attacker(runtime_engine, ws.id, owner_id) as conn:
            await conn.execute(text("SELECT warden_mark_workspace_deleted(:w)"), {"w": ws.id})
        await _refused(runtime_engine, ws.id, owner_id, purge, {"w": ws.id}, "kept until")
        await _refused(
            runtime_engine,
            ws.id,
            owner_id,
            "UPDATE workspace SET deleted_at = NULL WHERE id = :w",
            {"w": ws.id},
            "permission denied",
        )
        # Marking again does not move the mark.
        async with attacker(runtime_engine, ws.id, owner_id) as conn:
            first = (
                await conn.execute(text("SELECT warden_mark_workspace_deleted(:w)"), {"w": ws.id})
            ).scalar_one()
        r = await client.get(f"{ws.base}/audit", headers=ws.owner.headers)
        assert r.status_code == 404
        assert [r["id"] for r in await records(admin_engine, ws.id)] == [r["id"] for r in before]
        async with admin_engine.connect() as conn:
            marked = (
                await conn.execute(
                    text("SELECT deleted_at FROM workspace WHERE id = :w"), {"w": ws.id}
                )
            ).scalar_one()
        assert marked == first


async def test_a_short_retention_cuts_nothing_younger_than_the_grace_period(
    api, app, ws, runtime_engine, admin_engine, maintenance_db
):
    """The runtime role may set the shortest retention (1 day) in any workspace; the retention
    job still removes no record younger than the purge grace period, so this erases nothing
    sooner than a deletion could."""
    await _calls(api, ws, 3)
    before = [r["id"] for r in await records(admin_engine, ws.id)]
    async with admin_engine.begin() as conn:
        await shift_created_at(conn, ws.id, before, -timedelta(days=2))
    owner_id = await _user_id(api, ws.owner)
    async with attacker(runtime_engine, ws.id, owner_id) as conn:
        await conn.execute(
            text("UPDATE workspace SET audit_retention_days = 1 WHERE id = :w"), {"w": ws.id}
        )
    await _seal(app)
    async with grace(admin_engine, 72):
        await apply_retention(maintenance_db)
        assert set(before) <= {r["id"] for r in await records(admin_engine, ws.id)}
    # Past the grace period (0 here), the workspace's own setting applies.
    await apply_retention(maintenance_db)
    assert not set(before) & {r["id"] for r in await records(admin_engine, ws.id)}


async def test_a_deletion_keeps_the_trail_through_the_grace_period_then_finishes(
    api, client, app, ws, settings, admin_engine, capsys, tmp_path, cli_env, maintenance_db
):
    from workers.cron import finish_deletions

    await _calls(api, ws, 2)
    await _seal(app)
    anchors = await _export(capsys, tmp_path, ws)
    async with grace(admin_engine, 24):
        r = await client.delete(f"/api/v1/workspaces/{ws.slug}", headers=ws.owner.headers)
        assert r.status_code == 202, r.text
        await run_jobs(settings)
        assert len(await records(admin_engine, ws.id)) >= 2
        cron_ctx = {"db": app.state.db, "maintenance_db": maintenance_db, "settings": settings}
        assert await finish_deletions(cron_ctx) == {}
    # Past the grace period (0 from here on), the cron finishes: the trail and the workspace
    # go, the chain's head stays.
    done = await finish_deletions(cron_ctx)
    assert str(ws.id) in done
    assert await records(admin_engine, ws.id) == []
    async with admin_engine.connect() as conn:
        left = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM workspace WHERE id = :w), "
                    "(SELECT seq FROM audit_head WHERE workspace_id = :w)"
                ),
                {"w": ws.id},
            )
        ).one()
    assert left[0] == 0 and left[1] >= 2
    # An anchor of a workspace deleted since is no failure.
    code, out = await _cli(capsys, "audit", "verify", "--anchor", str(anchors))
    assert code == 0 and "deleted" in out[0]["anchor"]["note"], out


async def test_sequence_numbers_continue_after_every_record_is_cut(
    api, client, app, ws, admin_engine
):
    await _calls(api, ws, 3)
    await _seal(app)
    head = (await verify(client, ws))["head"]["seq"]
    async with admin_engine.begin() as conn:
        # Every record gone (as a purge leaves it): the head is what the chain continues from.
        await conn.execute(text("DELETE FROM audit_record WHERE workspace_id = :w"), {"w": ws.id})
    await _calls(api, ws, 1)
    await _seal(app)
    seqs = [r["seq"] for r in await records(admin_engine, ws.id)]
    assert min(s for s in seqs if s is not None) == head + 1


# Rewriting the database: truncation, reordering, a replaced tail.


async def test_a_truncated_tail_is_reported(
    api, client, app, ws, admin_engine, capsys, tmp_path, cli_env
):
    await _calls(api, ws, 5)
    await _seal(app)
    assert (await verify(client, ws))["ok"]
    anchors = await _export(capsys, tmp_path, ws)
    head = (await verify(client, ws))["head"]["seq"]
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM audit_record WHERE workspace_id = :w AND seq > :s"),
            {"w": ws.id, "s": head - 2},
        )
    result = await verify(client, ws)
    assert not result["ok"] and "missing at the end" in result["first_broken"]["reason"]
    # The head moved back too: only the anchor still knows.
    async with admin_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE audit_head h SET seq = a.seq, hash = a.hash, verified_seq = NULL "
                "FROM audit_record a WHERE h.workspace_id = :w AND a.workspace_id = :w "
                "AND a.seq = :s"
            ),
            {"w": ws.id, "s": head - 2},
        )
    result = await verify(client, ws)
    assert result["first_broken"] is None
    assert not result["ok"] and "truncated" in result["anchor"]["reason"]
    code, out = await _cli(capsys, "audit", "verify", "--anchor", str(anchors))
    assert code == 1 and "truncated" in " ".join(out[0]["reasons"])


async def test_reordered_records_are_reported(api, client, app, ws, admin_engine, capsys, cli_env):
    await _calls(api, ws, 4)
    await _seal(app)
    assert (await verify(client, ws))["ok"]
    async with admin_engine.begin() as conn:
        swap = "UPDATE audit_record SET seq = :to WHERE workspace_id = :w AND seq = :s"
        await conn.execute(text(swap), {"w": ws.id, "s": 2, "to": -2})
        await conn.execute(text(swap), {"w": ws.id, "s": 3, "to": 2})
        await conn.execute(text(swap), {"w": ws.id, "s": -2, "to": 3})
    # Before the verified position: only a full verification re-hashes them.
    assert (await verify(client, ws))["ok"]
    r = await client.get(f"{ws.base}/audit/verify?full=true", headers=ws.owner.headers)
    assert r.status_code == 200 and not r.json()["ok"]
    assert r.json()["first_broken"]["seq"] == 2
    code, out = await _cli(capsys, "audit", "verify", "--workspace", str(ws.id), "--full")
    assert code == 1 and out[0]["first_broken"]["seq"] == 2


async def _replace_tail(conn, workspace_id, after: int) -> None:
    """Rewrite every record after seq `after` and re-hash the chain (and its head) to match."""
    rows = (
        await conn.execute(
            text("SELECT seq FROM audit_record WHERE workspace_id = :w AND seq > :s ORDER BY seq"),
            {"w": workspace_id, "s": after},
        )
    ).scalars()
    prev = (
        await conn.execute(
            text("SELECT hash FROM audit_record WHERE workspace_id = :w AND seq = :s"),
            {"w": workspace_id, "s": after},
        )
    ).scalar_one()
    for seq in list(rows):
        key = {"w": workspace_id, "s": seq}
        await conn.execute(
            text(
                'UPDATE audit_record SET body = \'{"alias": "innocent"}\', prev_hash = :p '
                "WHERE workspace_id = :w AND seq = :s"
            ),
            {**key, "p": prev},
        )
        canonical = (
            await conn.execute(
                text(
                    "SELECT warden_audit_canonical(to_jsonb(a)) FROM audit_record a "
                    "WHERE a.workspace_id = :w AND a.seq = :s"
                ),
                key,
            )
        ).scalar_one()
        prev = hashlib.sha256(canonical.encode() + prev).digest()
        await conn.execute(
            text("UPDATE audit_record SET hash = :h WHERE workspace_id = :w AND seq = :s"),
            {**key, "h": prev},
        )
    await conn.execute(
        text("UPDATE audit_head SET hash = :h WHERE workspace_id = :w"),
        {"w": workspace_id, "h": prev},
    )


async def test_a_replaced_tail_is_detected_by_the_anchor(
    api, client, app, ws, admin_engine, capsys, tmp_path, cli_env
):
    await _calls(api, ws, 5)
    await _seal(app)
    anchors = await _export(capsys, tmp_path, ws)
    head = (await verify(client, ws))["head"]["seq"]
    async with admin_engine.begin() as conn:
        await _replace_tail(conn, ws.id, head - 3)
    r = await client.get(f"{ws.base}/audit/verify?full=true", headers=ws.owner.headers)
    result = r.json()
    assert result["first_broken"] is None  # the chain itself is consistent
    assert not result["ok"] and "replaced" in result["anchor"]["reason"]
    code, out = await _cli(capsys, "audit", "verify", "--anchor", str(anchors), "--full")
    assert code == 1 and "replaced" in " ".join(out[0]["reasons"])
    # The fake chain, sealed further, does not move the published anchor past the divergence.
    await _calls(api, ws, 1)
    await _seal(app)
    assert "replaced" in (await verify(client, ws))["anchor"]["reason"]


async def test_an_anchor_file_with_a_bad_signature_is_reported(
    api, client, app, ws, capsys, tmp_path, cli_env
):
    await _calls(api, ws, 1)
    await _seal(app)
    path = await _export(capsys, tmp_path, ws)
    anchor = orjson.loads(path.read_text())
    path.write_text(orjson.dumps({**anchor, "seq": anchor["seq"] + 10}).decode() + "\n")
    code, out = await _cli(capsys, "audit", "verify", "--anchor", str(path))
    assert code == 1 and "signature" in " ".join(out[0]["reasons"])
    code, out = await _cli(capsys, "audit", "verify", "--workspace", ws.slug)
    assert code == 0 and out[0]["ok"]


# Verification's cost.


async def test_incremental_verification_hashes_only_new_records(api, client, app, ws):
    await _calls(api, ws, 4)
    first = await _seal(app)
    result = await verify(client, ws)
    assert result["ok"] and result["checked"] == first and result["mode"] == "incremental"
    assert (await verify(client, ws))["checked"] == 0  # nothing sealed since
    assert await _seal(app) == 2  # the two verify calls' own records
    assert (await verify(client, ws))["checked"] == 2
    await _calls(api, ws, 3)
    new = await _seal(app)
    result = await verify(client, ws)
    assert result["ok"] and result["checked"] == new
    assert result["verified_from"] == result["head"]["seq"] - new
    full = (await client.get(f"{ws.base}/audit/verify?full=true", headers=ws.owner.headers)).json()
    assert full["ok"] and full["checked"] == full["head"]["seq"]


async def test_full_verification_is_for_owners_and_one_at_a_time(
    api, client, app, ws, admin_engine
):
    admin = await api.user("admin")
    await api.add_member(ws.owner, ws.slug, admin, "admin")
    await _calls(api, ws, 2)
    await _seal(app)
    url = f"{ws.base}/audit/verify?full=true"
    r = await client.get(url, headers=admin.headers)
    assert r.status_code == 403
    # While a verification holds the workspace's lock, others are answered at once (409),
    # without waiting on it or holding a connection: many parallel calls leave the pool free.
    async with admin_engine.connect() as conn:
        await conn.execute(
            text("SELECT pg_advisory_lock(:k, hashtext(:w))"), {"k": VERIFY_LOCK, "w": str(ws.id)}
        )
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.get(url, headers=ws.owner.headers) for _ in range(20))),
                timeout=30,
            )
            assert {a.status_code for a in answers} == {409}
            assert "running" in answers[0].json()["detail"]
            r = await client.get(f"{ws.base}/audit", headers=ws.owner.headers)
            assert r.status_code == 200
        finally:
            await conn.execute(
                text("SELECT pg_advisory_unlock(:k, hashtext(:w))"),
                {"k": VERIFY_LOCK, "w": str(ws.id)},
            )
            await conn.commit()
    answers = await asyncio.gather(*(client.get(url, headers=ws.owner.headers) for _ in range(10)))
    assert {a.status_code for a in answers} <= {200, 409} and 200 in {
        a.status_code for a in answers
    }
