"""Change requests, incidents, invitations and notifications across workspaces: another
workspace's ids answer 404 through either slug and change nothing; outsiders get 404 on every
route; a change or incident about a provider follows that provider's visibility (provider
groups and row grants)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.changes.conftest import Team, make_team
from tests.helpers import Api, User, assert_problem, run_jobs


async def _resources(team: Team) -> dict[str, str]:
    change = await team.submitted(team.engineer)
    r = await team.call(team.engineer, "POST", "/incidents", {"title": "t", "severity": "sev3"})
    incident = r.json()["id"]
    r = await team.call(
        team.owner, "POST", "/invitations", {"email": "guest@example.com", "role": "viewer"}
    )
    return {"change": change["id"], "incident": incident, "invitation": r.json()["id"]}


def _routes(ids: dict[str, str]) -> list[tuple[str, str, Any]]:
    c, i, v = ids["change"], ids["incident"], ids["invitation"]
    return [
        ("GET", "/changes", None),
        ("POST", "/changes", {"title": "planted", "description": "", "risk": "low"}),
        ("GET", f"/changes/{c}", None),
        ("PATCH", f"/changes/{c}", {"title": "pwned"}),
        ("POST", f"/changes/{c}/submit", None),
        ("POST", f"/changes/{c}/approve", None),
        ("POST", f"/changes/{c}/reject", {"reason": "x"}),
        ("POST", f"/changes/{c}/implement", None),
        ("POST", f"/changes/{c}/cancel", None),
        ("POST", "/changes/bulk-approve", {"ids": [c]}),
        ("GET", "/changes/distinct/state", None),
        ("POST", "/changes/search/state", ["submitted"]),
        ("GET", "/incidents", None),
        ("POST", "/incidents", {"title": "planted", "severity": "sev1"}),
        ("GET", f"/incidents/{i}", None),
        ("PATCH", f"/incidents/{i}", {"status": "resolved", "resolution": "pwned"}),
        ("GET", "/incidents/distinct/status", None),
        ("POST", "/incidents/search/status", ["open"]),
        ("GET", "/invitations", None),
        ("POST", "/invitations", {"email": "spy@example.com", "role": "admin"}),
        ("GET", f"/invitations/{v}", None),
        ("DELETE", f"/invitations/{v}", None),
        ("GET", "/invitations/distinct/state", None),
        ("POST", "/invitations/search/state", ["pending"]),
    ]


async def _snapshot(team: Team) -> dict[str, Any]:
    out = {}
    for collection in ("changes", "incidents", "invitations"):
        out[collection] = await team.api.all(team.owner, team.slug, collection)
    return out


@pytest.fixture(scope="module")
async def pair(client) -> tuple[Team, Team, dict[str, str]]:
    api = Api(client)
    a, b = await make_team(api), await make_team(api)
    return a, b, await _resources(b)


@pytest.mark.parametrize("who", ["member of A", "stranger"])
async def test_outsiders_get_404_everywhere_and_change_nothing(pair, who: str) -> None:
    a, b, ids = pair
    before = await _snapshot(b)
    user: User = a.owner if who == "member of A" else await a.api.user("stranger")
    for method, rest, body in _routes(ids):
        r = await b.call(user, method, rest, body)
        assert_problem(r, 404)
    assert await _snapshot(b) == before


async def test_another_workspaces_ids_through_my_slug_are_not_found(pair) -> None:
    a, b, ids = pair
    before = await _snapshot(b)
    for method, rest, body in _routes(ids):
        if not any(ids[k] in rest for k in ids):
            continue
        r = await a.call(a.owner, method, rest, body)
        assert_problem(r, 404)
    r = await a.call(a.owner, "POST", "/changes/bulk-approve", {"ids": [ids["change"]]})
    assert r.json()["results"][0]["reason"] == "Change request not found"
    # Another workspace's provider cannot be named either.
    provider = await b.api.provider(b.owner, b.slug)
    for rest, body in (
        (
            "/changes",
            {"title": "t", "description": "", "risk": "low", "provider_id": provider["id"]},
        ),
        ("/incidents", {"title": "t", "severity": "sev4", "provider_id": provider["id"]}),
        ("/incidents", {"title": "t", "severity": "sev4", "assignee_id": b.engineer.id}),
    ):
        assert_problem(await a.call(a.owner, "POST", rest, body), 400)
    assert await _snapshot(b) == before


async def test_changes_and_incidents_follow_their_providers_visibility(fresh_team: Team) -> None:
    team, api = fresh_team, fresh_team.api
    eu = await api.provider(team.owner, team.slug, region="eu")
    us = await api.provider(team.owner, team.slug, region="us")
    group = await api.group(team.owner, team.slug, provider_ids=[us["id"]])
    r = await team.call(
        team.owner,
        "POST",
        "/roles",
        {
            "name": "us approver",
            "inherits_from": "approver",
            "grants": ["change.bulk_approve"],
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        },
    )
    narrow = await api.user("narrow")
    await api.add_member(team.owner, team.slug, narrow, r.json()["id"])
    about_eu = await team.submitted(team.engineer, provider_id=eu["id"])
    about_us = await team.submitted(team.engineer, provider_id=us["id"])
    general = await team.submitted(team.engineer)
    r = await team.call(
        team.engineer,
        "POST",
        "/incidents",
        {"title": "eu", "severity": "sev2", "provider_id": eu["id"]},
    )
    eu_incident = r.json()["id"]

    listed = {c["id"] for c in (await team.call(narrow, "GET", "/changes")).json()["data"]}
    assert listed == {about_us["id"], general["id"]}
    assert_problem(await team.call(narrow, "GET", f"/changes/{about_eu['id']}"), 404)
    assert_problem(await team.act(narrow, about_eu["id"], "approve"), 404)
    r = await team.call(
        narrow, "POST", "/changes/bulk-approve", {"ids": [about_eu["id"], about_us["id"]]}
    )
    assert [x["outcome"] for x in r.json()["results"]] == ["refused", "approved"]
    assert_problem(await team.call(narrow, "GET", f"/incidents/{eu_incident}"), 404)
    assert (await team.call(narrow, "GET", "/incidents")).json()["data"] == []
    assert (await team.call(narrow, "GET", "/changes/distinct/provider_id")).json()["data"] == [
        us["id"]
    ]
    # The narrow member cannot be given the eu incident either.
    me = await api.me(narrow)
    r = await team.call(
        team.engineer, "PATCH", f"/incidents/{eu_incident}", {"assignee_id": me["id"]}
    )
    assert_problem(r, 400)

    # Row grants reach changes too: an approver limited to region "us" does not see eu's.
    r = await team.call(
        team.owner, "PATCH", f"/members/{team.approver.id}", {"attributes": {"region": "us"}}
    )
    assert r.status_code == 200, r.text
    listed = {c["id"] for c in (await team.call(team.approver, "GET", "/changes")).json()["data"]}
    assert about_eu["id"] not in listed and {about_us["id"], general["id"]} <= listed
    assert_problem(await team.act(team.approver, about_eu["id"], "approve"), 404)


async def test_deleting_the_workspace_removes_everything_of_it(
    fresh_team: Team, settings, admin_engine
) -> None:
    """The deletion job purges the new tables too (children first), decisions and timelines
    included; notifications stay with their users, unseen (the workspace is gone)."""
    team = fresh_team
    ws = await team.api.workspace_id(team.owner, team.slug)
    ids = await _resources(team)
    await team.act(team.approver, ids["change"], "approve")
    await team.call(
        team.engineer, "PATCH", f"/incidents/{ids['incident']}", {"status": "investigating"}
    )
    await run_jobs(settings)
    r = await team.api.client.get("/api/v1/me/notifications", headers=team.engineer.headers)
    assert [n["kind"] for n in r.json()["data"]] == ["change.approved"]
    r = await team.client.delete(f"/api/v1/workspaces/{team.slug}", headers=team.owner.headers)
    assert r.status_code == 202, r.text
    await run_jobs(settings)
    async with admin_engine.connect() as conn:
        for table in (
            "change_request",
            "change_approval",
            "incident",
            "incident_event",
            "invitation",
        ):
            count = await conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE workspace_id = :w"), {"w": ws}
            )
            assert count.scalar_one() == 0, table
        gone = await conn.execute(text("SELECT count(*) FROM workspace WHERE id = :w"), {"w": ws})
        assert gone.scalar_one() == 0
    r = await team.api.client.get("/api/v1/me/notifications", headers=team.engineer.headers)
    assert r.json()["data"] == []
