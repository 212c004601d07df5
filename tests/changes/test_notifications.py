"""Notifications: written by real arq workers after the action committed (a rolled-back action
notifies nobody), to exactly the members who should know and may see the resource, in a
per-user table nobody else reads; hidden once the user leaves the workspace."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.schemas.change_management import ChangeCreate
from app.services.changes import requests
from tests.changes.conftest import Team, make_team
from tests.helpers import PASSWORD, Api, User, assert_problem, run_jobs
from workers.context import with_rls_context


async def inbox(api: Api, user: User, query: str = "") -> list[dict[str, Any]]:
    r = await api.client.get(f"/api/v1/me/notifications{query}", headers=user.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def kinds(api: Api, user: User, resource_id: str) -> list[str]:
    return [n["kind"] for n in await inbox(api, user, f"?resource_id={resource_id}")]


async def test_a_change_tells_its_approvers_then_its_requester(fresh_team: Team, settings) -> None:
    team, api = fresh_team, fresh_team.api
    r = await team.call(
        team.owner,
        "POST",
        "/roles",
        {"name": "release", "inherits_from": "engineer", "grants": ["change.bulk_approve"]},
    )
    release = await api.user("release")
    await api.add_member(team.owner, team.slug, release, r.json()["id"])
    change = await team.submitted(team.engineer, title="Upgrade Postgres")
    assert await kinds(api, team.approver, change["id"]) == []  # nothing before the job ran
    await run_jobs(settings)
    for user in (team.owner, team.admin, team.approver, release):
        [note] = await inbox(api, user, f"?resource_id={change['id']}")
        assert note["kind"] == "change.submitted" and note["unread"] is True
        assert (note["workspace"], note["resource_type"]) == (team.slug, "change")
        assert "Upgrade Postgres" in note["title"] and note["actor_id"] == team.engineer.id
    for user in (team.engineer, team.viewer):  # the requester, and who may not approve
        assert await kinds(api, user, change["id"]) == []

    await team.act(team.approver, change["id"], "approve")
    await run_jobs(settings)
    assert await kinds(api, team.engineer, change["id"]) == ["change.approved"]
    await team.act(team.admin, change["id"], "implement")
    await run_jobs(settings)
    assert await kinds(api, team.engineer, change["id"]) == [
        "change.implemented",
        "change.approved",
    ]

    mine = await team.submitted(team.admin)
    await team.act(team.approver, mine["id"], "reject", {"reason": "no"})
    await run_jobs(settings)
    assert await kinds(api, team.admin, mine["id"]) == ["change.rejected"]
    own = await team.approved(team.engineer, team.approver)
    await team.act(team.engineer, own["id"], "implement")  # nobody is told of their own act
    await run_jobs(settings)
    assert await kinds(api, team.engineer, own["id"]) == ["change.approved"]


async def test_incident_assignment_and_invitations(fresh_team: Team, settings) -> None:
    team, api = fresh_team, fresh_team.api
    r = await team.call(
        team.engineer,
        "POST",
        "/incidents",
        {"title": "Disk full", "severity": "sev1", "assignee_id": team.viewer.id},
    )
    incident = r.json()
    await team.call(
        team.engineer, "PATCH", f"/incidents/{incident['id']}", {"assignee_id": team.engineer.id}
    )
    await run_jobs(settings)
    # Reassigned before the job ran: the first assignee is no longer told; self-assignment
    # tells nobody.
    assert await kinds(api, team.viewer, incident["id"]) == []
    assert await kinds(api, team.engineer, incident["id"]) == []
    await team.call(
        team.engineer, "PATCH", f"/incidents/{incident['id']}", {"assignee_id": team.approver.id}
    )
    await run_jobs(settings)
    [note] = await inbox(
        api, team.approver, f"?kind=incident.assigned&resource_id={incident['id']}"
    )
    assert "Disk full" in note["title"]

    registered = await api.user("registered")
    await team.call(
        team.owner, "POST", "/invitations", {"email": registered.email, "role": "viewer"}
    )
    email = f"later-{uuid.uuid4().hex[:8]}@example.com"
    await team.call(team.owner, "POST", "/invitations", {"email": email, "role": "engineer"})
    await run_jobs(settings)
    [note] = await inbox(api, registered)
    assert (note["kind"], note["workspace"], note["resource_type"]) == (
        "invitation.received",
        team.slug,
        "invitation",
    )
    r = await api.client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Later"}
    )
    assert r.status_code == 201, r.text
    later = await api.login(email)
    [note] = await inbox(api, later)  # told once they registered
    assert "engineer" in note["body"]


async def test_a_rolled_back_action_notifies_nobody(
    team: Team, app, settings, admin_engine
) -> None:
    """The job is written in the action's transaction and sent only after it commits."""
    db = app.state.db
    ws = await team.api.workspace_id(team.owner, team.slug)

    class Boom(Exception):
        pass

    async with with_rls_context(db, ws, team.engineer.id, "change.create") as ctx:
        draft = await requests.create_change(
            ctx, ChangeCreate(title="Never", description="", risk="low")
        )
    with pytest.raises(Boom):
        async with with_rls_context(db, ws, team.engineer.id, "change.create") as ctx:
            submitted = await requests.submit_change(ctx, draft["id"])
            assert submitted["state"] == "submitted"
            raise Boom
    await run_jobs(settings)
    async with admin_engine.connect() as conn:
        outbox = await conn.execute(
            text("SELECT count(*) FROM outbox WHERE args->>'change_id' = :c"),
            {"c": str(draft["id"])},
        )
        assert outbox.scalar_one() == 0
    for user in (team.owner, team.admin, team.approver):
        assert await kinds(team.api, user, str(draft["id"])) == []
    got = await team.call(team.owner, "GET", f"/changes/{draft['id']}")
    assert got.json()["state"] == "draft"
    # The same action, committed, does notify (the control).
    async with with_rls_context(db, ws, team.engineer.id, "change.create") as ctx:
        await requests.submit_change(ctx, draft["id"])
    await run_jobs(settings)
    assert await kinds(team.api, team.approver, str(draft["id"])) == ["change.submitted"]


async def test_recipients_who_cannot_see_it_or_left_are_not_told(
    fresh_team: Team, settings
) -> None:
    team, api = fresh_team, fresh_team.api
    provider = await api.provider(team.owner, team.slug, region="eu")
    group = await api.group(team.owner, team.slug)  # a group without that provider
    r = await team.call(
        team.owner,
        "POST",
        "/roles",
        {
            "name": "narrow approver",
            "inherits_from": "approver",
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        },
    )
    narrow = await api.user("narrow")
    await api.add_member(team.owner, team.slug, narrow, r.json()["id"])
    leaving = await api.user("leaving")
    await api.add_member(team.owner, team.slug, leaving, "approver")
    leaving.id = (await api.me(leaving))["id"]
    about = await team.submitted(team.engineer, provider_id=provider["id"])
    general = await team.submitted(team.engineer)
    assert (await team.call(team.owner, "DELETE", f"/members/{leaving.id}")).status_code == 204
    await run_jobs(settings)
    assert await kinds(api, narrow, about["id"]) == []  # cannot see the provider
    assert await kinds(api, narrow, general["id"]) == ["change.submitted"]
    assert await inbox(api, leaving) == []  # removed before the job ran
    assert await kinds(api, team.approver, about["id"]) == ["change.submitted"]


async def test_notifications_are_per_user_and_follow_membership(settings, client) -> None:
    api = Api(client)
    a, b = await make_team(api), await make_team(api)
    await a.submitted(a.engineer)
    await b.submitted(b.engineer)
    await run_jobs(settings)
    mine = await inbox(api, a.approver)
    theirs = await inbox(api, b.approver)
    assert mine and theirs and {n["workspace"] for n in mine} == {a.slug}
    assert {n["id"] for n in mine}.isdisjoint(n["id"] for n in theirs)
    # Someone else's notification: not found, not read.
    assert_problem(
        await api.client.post(
            f"/api/v1/me/notifications/{theirs[0]['id']}/read", headers=a.approver.headers
        ),
        404,
    )
    assert_problem(
        await api.client.post("/api/v1/me/notifications/nope/read", headers=a.approver.headers), 404
    )
    r = await api.client.post("/api/v1/me/notifications/read-all", headers=a.approver.headers)
    assert r.json() == {"updated": len(mine)}
    assert all(n["unread"] for n in await inbox(api, b.approver))
    r = await api.client.post(
        f"/api/v1/me/notifications/{mine[0]['id']}/read", headers=a.approver.headers
    )
    assert r.status_code == 200 and r.json()["unread"] is False and r.json()["read_at"]
    assert await inbox(api, a.approver, "?unread=true") == []
    # The query language: kind, workspace, created_at, unread.
    assert (
        len(await inbox(api, b.approver, f"?kind=change.submitted&workspace={b.slug}&unread=true"))
        == 1
    )
    assert await inbox(api, b.approver, f"?workspace={a.slug}") == []
    assert len(await inbox(api, b.approver, "?created_at__gte=2000-01-01&sort=created_at")) == 1
    for bad in ("?kind=spam", "?unread=maybe", "?secret=1", "?created_at__gte=yesterday"):
        r = await api.client.get(f"/api/v1/me/notifications{bad}", headers=a.approver.headers)
        assert_problem(r, 400)
    # Leaving a workspace hides what it said; coming back shows it again.
    await a.call(a.owner, "DELETE", f"/members/{a.approver.id}")
    assert await inbox(api, a.approver) == []
    assert_problem(
        await api.client.post(
            f"/api/v1/me/notifications/{mine[0]['id']}/read", headers=a.approver.headers
        ),
        404,
    )
    await api.add_member(a.owner, a.slug, a.approver, "viewer")
    assert len(await inbox(api, a.approver)) == len(mine)


async def test_the_database_keeps_notifications_per_user(
    team: Team, settings, runtime_engine
) -> None:
    await team.submitted(team.engineer)
    await run_jobs(settings)
    assert await inbox(team.api, team.approver)
    async with runtime_engine.connect() as conn:
        await conn.begin()
        await conn.exec_driver_sql(f"SET LOCAL app.current_user_id = '{uuid.UUID(team.admin.id)}'")
        rows = await conn.execute(
            text("SELECT count(*) FROM notification WHERE user_id = :u"), {"u": team.approver.id}
        )
        assert rows.scalar_one() == 0  # RLS: only the user in context
        with pytest.raises(DBAPIError) as refused:
            await conn.execute(
                text(
                    "INSERT INTO notification (user_id, id, kind, about_workspace_id, "
                    "workspace_slug, title, dedupe_key) VALUES (:u, :i, 'change.approved', :i, "
                    "'x', 'forged', 'forged')"
                ),
                {"u": team.approver.id, "i": str(uuid.uuid4())},
            )
        assert refused.value.orig.sqlstate == "42501"  # type: ignore[union-attr]
        await conn.rollback()
