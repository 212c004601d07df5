"""The job context: no context → nothing; the user is re-checked; one workspace only."""

from __future__ import annotations

import uuid
from typing import Any

from arq.worker import func
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Finding, Outbox, Provider, Scan, Task
from tests.helpers import report_bytes, run_jobs, sample_report, upload_scan
from tests.workers.conftest import enqueue_spec, functions_with, kind_for_test
from workers.context import Refused, job, with_rls_context

SCOPED = ("provider", "scan", "finding", "task", "outbox", "membership", "workspace")
seen: dict[str, Any] = {}


async def _workspace_with_findings(api, client, settings):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    assert r.status_code == 202
    await run_jobs(settings)
    owner.id = (await api.me(owner))["id"]
    return owner, slug, await api.workspace_id(owner, slug), provider


async def no_context_job(ctx: dict[str, Any]) -> None:
    """A job function NOT wrapped by with_rls_context: code that opened its own session on the
    runtime role's engine, with no context."""
    async with AsyncSession(ctx["db"].engine) as session, session.begin():
        seen["no_context"] = {
            t: (await session.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in SCOPED
        }
        seen["no_context_orm"] = len((await session.execute(select(Finding))).scalars().all())


async def test_a_job_without_context_sees_zero_rows(api, client, settings, arq_pool, admin_engine):
    await _workspace_with_findings(api, client, settings)
    async with admin_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM finding"))).scalar_one() >= 5
    await arq_pool.enqueue_job("test.no_context", _queue_name=settings.job_queue_name)
    functions = [*functions_with(settings=settings), func(no_context_job, name="test.no_context")]
    worker = await run_jobs(settings, functions=functions)
    assert worker.jobs_complete == 1
    assert seen["no_context"] == dict.fromkeys(SCOPED, 0)
    assert seen["no_context_orm"] == 0


@job(kind_for_test("peek", "finding.read"))
async def peek(jc, ctx) -> dict[str, Any]:
    """Everything a wrapped job can see, through the ORM and through raw SQL."""
    session = ctx.session
    orm = {
        model.__tablename__: [str(r) for r in (await session.execute(select(model.id))).scalars()]
        for model in (Provider, Scan, Finding, Task, Outbox)
    }
    raw = {
        t: sorted(
            str(w)
            for w in (
                await session.execute(text(f"SELECT DISTINCT workspace_id FROM {t}"))
            ).scalars()
        )
        for t in ("provider", "scan", "finding", "task", "outbox", "membership")
    }
    seen["peek"] = {"orm": orm, "raw": raw}
    return {"ok": True}


async def test_a_job_never_sees_another_workspaces_rows(
    api, client, settings, db, arq_pool, admin_engine
):
    owner_a, _, ws_a, _ = await _workspace_with_findings(api, client, settings)
    await _workspace_with_findings(api, client, settings)
    task_id = await enqueue_spec(db, arq_pool, settings, peek, ws_a, owner_a.id)
    await run_jobs(settings, functions=functions_with(peek, settings=settings))
    assert seen["peek"]["raw"] == {
        t: [ws_a] for t in ("provider", "scan", "finding", "task", "outbox", "membership")
    }
    async with admin_engine.connect() as conn:
        for table, ids in seen["peek"]["orm"].items():
            expected = sorted(
                str(i)
                for i in (
                    await conn.execute(
                        text(f"SELECT id FROM {table} WHERE workspace_id = :w"), {"w": ws_a}
                    )
                ).scalars()
            )
            assert sorted(ids) == expected, table
            assert ids, table
        state = (
            await conn.execute(text("SELECT state FROM task WHERE id = :t"), {"t": task_id})
        ).scalar_one()
    assert state == "succeeded"


async def test_with_rls_context_refuses_writes_to_another_workspace(api, client, settings, db):
    owner_a, _, ws_a, _ = await _workspace_with_findings(api, client, settings)
    _, _, ws_b, provider_b = await _workspace_with_findings(api, client, settings)
    async with with_rls_context(db, ws_a, owner_a.id, "provider.update") as ctx:
        result = await ctx.session.execute(
            text("UPDATE provider SET alias = 'hijacked' WHERE id = :p"), {"p": provider_b["id"]}
        )
        assert result.rowcount == 0
    # Not a member of B: refused before any statement runs.
    try:
        async with with_rls_context(db, ws_b, owner_a.id, "provider.read"):
            raise AssertionError("entered another workspace")
    except Refused as exc:
        assert "no longer a member" in str(exc)


async def _engineer_upload(api, client):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    engineer = await api.user("engineer")
    await api.add_member(owner, slug, engineer, "engineer")
    engineer.id = (await api.me(engineer))["id"]
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, engineer, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    assert r.status_code == 202, r.text
    return owner, engineer, slug, r


async def _assert_refused(client, owner, slug, r, admin_engine, reason):
    task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert task["state"] == "refused", task
    assert reason in task["error"]
    scan = (
        await client.get(f"/ws/{slug}/api/v1/scans/{task['resource_id']}", headers=owner.headers)
    ).json()
    assert scan["state"] == "refused" and scan["findings_count"] == 0
    async with admin_engine.connect() as conn:
        for sql in (
            "SELECT count(*) FROM finding WHERE scan_id = :s",
            "SELECT count(*) FROM scan_upload WHERE scan_id = :s",
            "SELECT count(*) FROM outbox WHERE task_id = :t AND done_at IS NULL",
        ):
            count = (await conn.execute(text(sql), {"s": scan["id"], "t": task["id"]})).scalar()
            assert count == 0, sql


async def test_user_removed_after_enqueue_is_refused(api, client, settings, admin_engine):
    owner, engineer, slug, r = await _engineer_upload(api, client)
    removed = await client.delete(f"/ws/{slug}/api/v1/members/{engineer.id}", headers=owner.headers)
    assert removed.status_code == 204
    await run_jobs(settings)
    await _assert_refused(client, owner, slug, r, admin_engine, "no longer a member")


async def test_user_demoted_after_enqueue_is_refused(api, client, settings, admin_engine):
    owner, engineer, slug, r = await _engineer_upload(api, client)
    changed = await client.patch(
        f"/ws/{slug}/api/v1/members/{engineer.id}", json={"role": "viewer"}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    await run_jobs(settings)
    await _assert_refused(client, owner, slug, r, admin_engine, "'scan.create' permission")


async def test_job_replays_provider_visibility(api, client, settings, admin_engine):
    """A member whose role sees only some provider groups: the job gets the same visibility
    as a request, re-read when it runs (the provider left the group → refused)."""
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    hidden = await api.provider(owner, slug)
    group = await api.group(owner, slug, provider_ids=[provider["id"]])
    role = await client.post(
        f"/ws/{slug}/api/v1/roles",
        headers=owner.headers,
        json={
            "name": "scoped-engineer",
            "inherits_from": "engineer",
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        },
    )
    assert role.status_code == 201, role.text
    member = await api.user("scoped")
    await api.add_member(owner, slug, member, role.json()["id"])
    body = report_bytes(sample_report("aws", provider["uid"]))
    ok = await upload_scan(client, member, slug, provider["id"], body)
    assert ok.status_code == 202
    r = await upload_scan(
        client, member, slug, hidden["id"], report_bytes(sample_report("aws", hidden["uid"]))
    )
    assert r.status_code == 404  # not visible to the member at request time either
    second = await upload_scan(client, member, slug, provider["id"], body)
    assert second.status_code == 202
    await run_jobs(settings)
    first = (await client.get(ok.headers["content-location"], headers=owner.headers)).json()
    assert first["state"] == "succeeded"
    # Now take the provider out of the member's group and import again.
    third = await upload_scan(client, member, slug, provider["id"], body)
    assert third.status_code == 202
    moved = await client.patch(
        f"/ws/{slug}/api/v1/provider-groups/{group['id']}",
        json={"provider_ids": []},
        headers=owner.headers,
    )
    assert moved.status_code == 200
    await run_jobs(settings)
    await _assert_refused(client, owner, slug, third, admin_engine, "no longer visible")
    mine = await client.get(f"/ws/{slug}/api/v1/findings", headers=member.headers)
    assert mine.json()["data"] == []


async def test_refused_job_delivered_again_stays_refused(
    api, client, settings, arq_pool, admin_engine
):
    owner, engineer, slug, r = await _engineer_upload(api, client)
    await client.delete(f"/ws/{slug}/api/v1/members/{engineer.id}", headers=owner.headers)
    await run_jobs(settings)
    task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    async with admin_engine.connect() as conn:
        outbox_id, ws = (
            await conn.execute(
                text("SELECT id, workspace_id FROM outbox WHERE task_id = :t"), {"t": task["id"]}
            )
        ).one()
    await arq_pool.delete(f"arq:result:{outbox_id}")
    job = await arq_pool.enqueue_job(
        "scan.import",
        str(ws),
        engineer.id,
        str(outbox_id),
        _job_id=str(outbox_id),
        _queue_name=settings.job_queue_name,
    )
    assert job is not None
    await run_jobs(settings)
    again = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert again == task
    assert uuid.UUID(again["id"])
