"""Tasks: read, list, cancel; workspace-scoped like everything else."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.helpers import assert_problem, report_bytes, run_jobs, sample_report, upload_scan


async def _pending_import(api, client):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    assert r.status_code == 202
    return owner, slug, r


async def test_cancel_a_pending_task(api, client, settings, admin_engine):
    owner, slug, r = await _pending_import(api, client)
    task_id = r.json()["id"]
    cancelled = await client.post(
        f"/ws/{slug}/api/v1/tasks/{task_id}/cancel", headers=owner.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["finished_at"]
    worker = await run_jobs(settings)  # the job arrives, sees the task cancelled, does nothing
    assert worker.jobs_complete == 1
    task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert task["state"] == "cancelled" and task["attempts"] == 0
    scan = (
        await client.get(f"/ws/{slug}/api/v1/scans/{task['resource_id']}", headers=owner.headers)
    ).json()
    assert scan["state"] == "cancelled"
    assert (await client.get(f"/ws/{slug}/api/v1/findings", headers=owner.headers)).json()[
        "data"
    ] == []
    async with admin_engine.connect() as conn:
        left = (
            await conn.execute(
                text("SELECT count(*) FROM scan_upload WHERE scan_id = :s"), {"s": scan["id"]}
            )
        ).scalar_one()
    assert left == 0
    again = await client.post(f"/ws/{slug}/api/v1/tasks/{task_id}/cancel", headers=owner.headers)
    assert_problem(again, 409)


async def test_finished_task_cannot_be_cancelled(api, client, settings):
    owner, slug, r = await _pending_import(api, client)
    await run_jobs(settings)
    again = await client.post(
        f"/ws/{slug}/api/v1/tasks/{r.json()['id']}/cancel", headers=owner.headers
    )
    body = assert_problem(again, 409)
    assert "succeeded" in body["detail"]


async def test_tasks_are_scoped_and_permissioned(api, client, settings):
    owner, slug, r = await _pending_import(api, client)
    task_id = r.json()["id"]
    outsider = await api.user("outsider")
    other_slug = await api.workspace(outsider)
    # Another workspace's task id: 404, in the outsider's own workspace and in ours.
    assert_problem(
        await client.get(f"/ws/{other_slug}/api/v1/tasks/{task_id}", headers=outsider.headers), 404
    )
    assert_problem(
        await client.get(f"/ws/{slug}/api/v1/tasks/{task_id}", headers=outsider.headers), 404
    )
    assert_problem(
        await client.post(
            f"/ws/{other_slug}/api/v1/tasks/{task_id}/cancel", headers=outsider.headers
        ),
        404,
    )
    viewer = await api.user("viewer")
    await api.add_member(owner, slug, viewer, "viewer")
    seen = await client.get(f"/ws/{slug}/api/v1/tasks/{task_id}", headers=viewer.headers)
    assert seen.status_code == 200
    assert_problem(
        await client.post(f"/ws/{slug}/api/v1/tasks/{task_id}/cancel", headers=viewer.headers), 403
    )
    assert_problem(
        await client.get(f"/ws/{slug}/api/v1/tasks/{uuid.uuid4()}", headers=owner.headers), 404
    )
    assert_problem(
        await client.get(f"/ws/{slug}/api/v1/tasks/not-a-uuid", headers=owner.headers), 404
    )
    listed = await client.get(
        f"/ws/{slug}/api/v1/tasks", params={"state": "pending"}, headers=owner.headers
    )
    assert [t["id"] for t in listed.json()["data"]] == [task_id]
    await run_jobs(settings)
    listed = await client.get(
        f"/ws/{slug}/api/v1/tasks", params={"state": "pending"}, headers=owner.headers
    )
    assert listed.json()["data"] == []
    assert (await client.get(f"/ws/{other_slug}/api/v1/tasks", headers=outsider.headers)).json()[
        "data"
    ] == []
    assert_problem(
        await client.get(
            f"/ws/{slug}/api/v1/tasks", params={"state": "bogus"}, headers=owner.headers
        ),
        400,
    )
