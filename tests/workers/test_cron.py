"""Cron jobs: finding partitions ahead (and the watched default partition), retention."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.catalog import rls_problems
from app.db.partitions import add_months, month_bounds, partition_name
from app.db.rls import Scope, normalize_predicate
from app.db.tenant import Visibility, context_statement
from tests.helpers import report_bytes, run_jobs, sample_report, upload_scan
from workers import cron


async def _partitions(admin_engine) -> dict[str, str]:
    async with admin_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'finding'::regclass"
            )
        )
        return dict(rows.all())


async def test_partitions_are_created_ahead_under_the_policy(
    settings, maintenance_db, admin_engine, database
):
    settings = settings.model_copy(update={"finding_partitions_ahead": 5})
    result = await cron.maintain_partitions(
        {"settings": settings, "maintenance_db": maintenance_db}
    )
    assert result["default_partition_rows"] == 0
    parts = await _partitions(admin_engine)
    first = datetime.now(UTC).date().replace(day=1)
    for offset in range(6):
        month = add_months(first, offset)
        name = partition_name(month)
        low, high = month_bounds(month)
        # The SQL function's bounds are the Python ones (random bits zeroed).
        assert parts[name] == f"FOR VALUES FROM ('{low}') TO ('{high}')"
    assert parts["finding_default"] == "DEFAULT"
    again = await cron.maintain_partitions({"settings": settings, "maintenance_db": maintenance_db})
    assert again["created"] == []
    async with admin_engine.connect() as conn:
        assert (
            await rls_problems(conn, database["runtime_role"], database["maintenance_role"]) == []
        )
        rows = (
            await conn.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, r.rolname, "
                    "pg_get_expr(p.polqual, p.polrelid) FROM pg_class c "
                    "JOIN pg_roles r ON r.oid = c.relowner "
                    "JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname = ANY (:names)"
                ),
                {"names": [partition_name(add_months(first, 5))]},
            )
        ).all()
    assert len(rows) == 1
    _, enabled, forced, owner, qual = rows[0]
    assert enabled and forced and owner == database["definer_role"]
    assert normalize_predicate(qual) == normalize_predicate(Scope.WORKSPACE_PROVIDER.value)


async def test_default_partition_is_watched_and_emptied(
    api, client, settings, maintenance_db, admin_engine, runtime_engine
):
    """A finding with no monthly partition lands in the default one; creating its month's
    partition moves it there, still readable through the parent."""
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    await run_jobs(settings)
    ws, user = await api.workspace_id(owner, slug), (await api.me(owner))["id"]
    far = add_months(datetime.now(UTC).date().replace(day=1), 20)  # beyond the ones kept ahead
    low, _ = month_bounds(far)
    stray = str(low).replace("-8000-000000000000", "-8000-000000000001")
    async with runtime_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT 1"))
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute(
            context_statement(
                __import__("uuid").UUID(ws), __import__("uuid").UUID(user), Visibility(True)
            )
        )
        # A copy of an imported finding with an id far ahead (as VALUES: Citus refuses an
        # INSERT … SELECT that it would have to run through the coordinator under RLS).
        row = (
            await conn.execute(
                text(
                    "SELECT workspace_id, scan_id, provider_id, check_id, title, severity, "
                    "status, raw::text AS raw, inserted_at FROM finding LIMIT 1"
                )
            )
        ).one()
        await conn.execute(
            text(
                "INSERT INTO finding (workspace_id, id, scan_id, provider_id, uid, check_id, title, "
                "severity, status, raw, inserted_at) VALUES (:workspace_id, :id, :scan_id, "
                ":provider_id, 'far', :check_id, :title, :severity, :status, "
                "CAST(:raw AS jsonb), :inserted_at)"
            ),
            {**row._asdict(), "id": stray},
        )
    watched = await cron.maintain_partitions(
        {"settings": settings, "maintenance_db": maintenance_db}
    )
    assert watched["default_partition_rows"] == 1
    async with maintenance_db.transaction() as tx:
        name = (await tx.fetch("SELECT warden_create_finding_partition($1) AS n", far))[0]["n"]
    assert name == partition_name(far)
    watched = await cron.maintain_partitions(
        {"settings": settings, "maintenance_db": maintenance_db}
    )
    assert watched["default_partition_rows"] == 0
    async with admin_engine.connect() as conn:
        where = (
            await conn.execute(
                text("SELECT tableoid::regclass::text FROM finding WHERE id = :id"), {"id": stray}
            )
        ).scalar_one()
    # (on Citus the row's table is the partition's shard: its name and the shard id)
    assert re.fullmatch(rf"{partition_name(far)}(_\d+)?", where), where
    detail = await client.get(f"/ws/{slug}/api/v1/findings/{stray}", headers=owner.headers)
    assert detail.status_code == 200 and detail.json()["uid"] == "far"
    assert r.status_code == 202


async def test_task_retention_and_stuck_tasks(api, client, settings, maintenance_db, admin_engine):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    old = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    await run_jobs(settings)
    stuck = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    old_id, stuck_id = old.json()["id"], stuck.json()["id"]
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE task SET finished_at = now() - interval '40 days' WHERE id = :t"),
            {"t": old_id},
        )
        await conn.execute(
            text(
                "UPDATE task SET state = 'running', "
                "updated_at = now() - interval '3 days' WHERE id = :t"
            ),
            {"t": stuck_id},
        )
    result = await cron.task_retention({"settings": settings, "maintenance_db": maintenance_db})
    assert result["pruned"] >= 1 and result["expired"] >= 1
    gone = await client.get(old.headers["content-location"], headers=owner.headers)
    assert gone.status_code == 404
    scan = (
        await client.get(
            f"/ws/{slug}/api/v1/scans/{old.json()['resource_id']}", headers=owner.headers
        )
    ).json()
    assert scan["state"] == "completed" and scan["task_id"] is None  # the scan outlives it
    failed = (await client.get(stuck.headers["content-location"], headers=owner.headers)).json()
    assert failed["state"] == "failed" and "stopped reporting" in failed["error"]
    async with admin_engine.connect() as conn:
        done = (
            await conn.execute(
                text("SELECT done_at FROM outbox WHERE task_id = :t"), {"t": stuck_id}
            )
        ).scalar_one()
    assert done is not None
    await run_jobs(settings)  # its queued job arrives late, finds the task finished, skips
    failed_again = (
        await client.get(stuck.headers["content-location"], headers=owner.headers)
    ).json()
    assert failed_again == failed


async def test_partition_function_refuses_months_far_out(database, runtime_engine):
    """The maintenance role may call it, but not to litter the catalog with partitions; the
    runtime role may not call it at all."""
    engine = create_async_engine(database["maintenance_url"])
    try:
        for month in (date(2091, 1, 1), date(1990, 1, 1)):
            async with engine.connect() as conn:
                with pytest.raises(DBAPIError, match="out of range"):
                    await conn.execute(
                        text("SELECT warden_create_finding_partition(:m)"), {"m": month}
                    )
    finally:
        await engine.dispose()
    async with runtime_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(
                text("SELECT warden_create_finding_partition(:m)"), {"m": date.today()}
            )


async def test_audit_crons_seal_the_chain_and_apply_retention(api, client, maintenance_db):
    """The worker's audit crons: records committed unsealed are linked by the sealer, and the
    chain then verifies; retention runs without error alongside."""
    owner = await api.user("sealer")
    slug = await api.workspace(owner)
    for _ in range(3):
        await api.provider(owner, slug)
    before = (await client.get(f"/ws/{slug}/api/v1/audit/verify", headers=owner.headers)).json()
    assert before["unsealed"] > 0
    assert await cron.seal_audit({"maintenance_db": maintenance_db}) >= before["unsealed"]
    after = (await client.get(f"/ws/{slug}/api/v1/audit/verify", headers=owner.headers)).json()
    # The verify call itself left one more unsealed record after the sealer ran.
    assert after["ok"] is True and after["unsealed"] <= 1, after
    result = await cron.audit_retention({"maintenance_db": maintenance_db})
    assert result["removed"] >= 0 and isinstance(result["cuts"], list)
