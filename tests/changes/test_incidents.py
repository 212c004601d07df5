"""Incidents: allowed status moves (409 otherwise), `resolved` needs a resolution, the assignee
must be a member who may read the incident (400 otherwise), and a timeline of status changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.changes.conftest import Team
from tests.helpers import assert_problem

STATUSES = ("open", "investigating", "mitigated", "resolved", "closed")
ALLOWED = {
    "open": {"investigating", "mitigated", "resolved"},
    "investigating": {"mitigated", "resolved"},
    "mitigated": {"investigating", "resolved"},
    "resolved": {"closed", "investigating"},
    "closed": set(),
}
# How to reach each status from open.
PATHS = {
    "open": [],
    "investigating": ["investigating"],
    "mitigated": ["mitigated"],
    "resolved": ["resolved"],
    "closed": ["resolved", "closed"],
}


async def _incident(team: Team, **fields: Any) -> dict[str, Any]:
    r = await team.call(
        team.engineer, "POST", "/incidents", {"title": "API down", "severity": "sev2", **fields}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _patch(team: Team, incident_id: str, body: dict[str, Any]) -> Any:
    return await team.call(team.engineer, "PATCH", f"/incidents/{incident_id}", body)


async def _at(team: Team, status: str) -> dict[str, Any]:
    incident = await _incident(team)
    for step in PATHS[status]:
        body = {"status": step, **({"resolution": "rolled back"} if step == "resolved" else {})}
        r = await _patch(team, incident["id"], body)
        assert r.status_code == 200, r.text
        incident = r.json()
    return incident


@pytest.mark.parametrize(
    ("start", "target"), [(a, b) for a in STATUSES for b in STATUSES if a != b]
)
async def test_every_status_move(team: Team, start: str, target: str) -> None:
    incident = await _at(team, start)
    body = {"status": target, **({"resolution": "fixed"} if target == "resolved" else {})}
    r = await _patch(team, incident["id"], body)
    if target in ALLOWED[start]:
        assert r.status_code == 200, r.text
        assert r.json()["status"] == target
        last = r.json()["timeline"][-1]
        assert (last["from_status"], last["to_status"], last["actor_id"]) == (
            start,
            target,
            team.engineer.id,
        )
    else:
        assert assert_problem(r, 409)["current_status"] == start
        after = await team.call(team.owner, "GET", f"/incidents/{incident['id']}")
        assert after.json() == incident


async def test_resolving_needs_a_resolution_and_the_timeline_records_every_move(team: Team) -> None:
    incident = await _incident(team, description="5xx everywhere")
    assert incident["status"] == "open"
    assert [(e["from_status"], e["to_status"]) for e in incident["timeline"]] == [(None, "open")]
    r = await _patch(team, incident["id"], {"status": "resolved"})
    assert "resolution" in assert_problem(r, 400)["detail"]
    for body in ({"status": "investigating"}, {"severity": "sev1"}, {"status": "mitigated"}):
        assert (await _patch(team, incident["id"], body)).status_code == 200
    r = await _patch(
        team, incident["id"], {"status": "resolved", "resolution": "bad deploy reverted"}
    )
    body = r.json()
    assert (body["status"], body["severity"], body["resolution"]) == (
        "resolved",
        "sev1",
        "bad deploy reverted",
    )
    assert body["resolved_at"]
    r = await _patch(team, incident["id"], {"status": "investigating"})  # reopened
    assert r.json()["resolved_at"] is None
    r = await _patch(team, incident["id"], {"status": "resolved"})  # the resolution is kept
    r = await _patch(team, incident["id"], {"status": "closed"})
    assert r.json()["closed_at"]
    moves = [(e["from_status"], e["to_status"]) for e in r.json()["timeline"]]
    assert moves == [
        (None, "open"),
        ("open", "investigating"),
        ("investigating", "mitigated"),
        ("mitigated", "resolved"),
        ("resolved", "investigating"),
        ("investigating", "resolved"),
        ("resolved", "closed"),
    ]
    for bad in (
        {"status": "done"},
        {"severity": "sev5"},
        {"status": None},
        {"title": "x"},
        {"resolution": ""},
    ):
        assert_problem(await _patch(team, incident["id"], bad), 422)


async def test_the_assignee_must_be_a_member_who_may_read_it(team: Team, api) -> None:
    incident = await _incident(team)
    stranger = await api.user("stranger")
    stranger.id = (await api.me(stranger))["id"]
    r = await team.call(
        team.owner,
        "POST",
        "/roles",
        {"name": "no-incidents", "inherits_from": "viewer", "revokes": ["incident.read"]},
    )
    blind = await api.user("blind")
    await api.add_member(team.owner, team.slug, blind, r.json()["id"])
    blind.id = (await api.me(blind))["id"]
    for user_id in (stranger.id, blind.id, "00000000-0000-7000-8000-000000000000"):
        r = await _patch(team, incident["id"], {"assignee_id": user_id})
        assert "assignee" in assert_problem(r, 400)["detail"]
        r = await team.call(
            team.engineer,
            "POST",
            "/incidents",
            {"title": "t", "severity": "sev3", "assignee_id": user_id},
        )
        assert_problem(r, 400)
    r = await _patch(
        team, incident["id"], {"assignee_id": team.viewer.id}
    )  # viewers read incidents
    assert r.json()["assignee_id"] == team.viewer.id
    r = await _patch(team, incident["id"], {"assignee_id": None})
    assert r.json()["assignee_id"] is None
    listed = await team.call(
        team.viewer, "GET", f"/incidents?id={incident['id']}&assignee_id__exists=false"
    )
    assert [i["id"] for i in listed.json()["data"]] == [incident["id"]]


async def test_roles_and_lists(team: Team) -> None:
    incident = await _incident(team, severity="sev1")
    assert_problem(
        await team.call(team.viewer, "POST", "/incidents", {"title": "t", "severity": "sev4"}), 403
    )
    assert_problem(await _patch_as(team, team.approver, incident["id"], {"severity": "sev4"}), 403)
    r = await team.call(team.viewer, "GET", "/incidents?severity=sev1&status=open")
    assert incident["id"] in [i["id"] for i in r.json()["data"]]
    r = await team.call(team.viewer, "GET", "/incidents/distinct/severity")
    assert "sev1" in r.json()["data"]
    assert_problem(await team.call(team.viewer, "GET", "/incidents?severity=sev9"), 400)


async def _patch_as(team: Team, user: Any, incident_id: str, body: dict[str, Any]) -> Any:
    return await team.call(user, "PATCH", f"/incidents/{incident_id}", body)
