"""Every change-request transition, allowed and refused: a refused one answers 409 with the
current state and changes nothing; the wrong person gets 403."""

from __future__ import annotations

from typing import Any

import pytest

from tests.changes.conftest import Team
from tests.helpers import assert_problem

STATES = ("draft", "submitted", "approved", "rejected", "implemented", "cancelled")
# action -> (states it is allowed from, state it leads to)
ACTIONS: dict[str, tuple[set[str], str]] = {
    "submit": ({"draft"}, "submitted"),
    "approve": ({"submitted"}, "approved"),
    "reject": ({"submitted"}, "rejected"),
    "implement": ({"approved"}, "implemented"),
    "cancel": ({"draft", "submitted"}, "cancelled"),
    "edit": ({"draft"}, "draft"),
}


async def in_state(team: Team, state: str) -> dict[str, Any]:
    """A change requested by the engineer, brought into `state` through the API."""
    eng, approver = team.engineer, team.approver
    if state == "draft":
        return await team.change(eng)
    if state == "submitted":
        return await team.submitted(eng)
    if state == "approved":
        return await team.approved(eng, approver)
    if state == "rejected":
        change = await team.submitted(eng)
        r = await team.act(approver, change["id"], "reject", {"reason": "too risky"})
        assert r.status_code == 200, r.text
        return dict(r.json())
    if state == "implemented":
        change = await team.approved(eng, approver)
        r = await team.act(eng, change["id"], "implement")
        assert r.status_code == 200, r.text
        return dict(r.json())
    change = await team.change(eng)
    r = await team.act(eng, change["id"], "cancel")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def perform(team: Team, action: str, change_id: str) -> Any:
    if action == "edit":
        return await team.call(team.engineer, "PATCH", f"/changes/{change_id}", {"title": "New"})
    actor = team.approver if action in ("approve", "reject") else team.engineer
    body = {"reason": "no"} if action == "reject" else None
    return await team.act(actor, change_id, action, body)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(ACTIONS))
async def test_every_transition(team: Team, action: str, state: str) -> None:
    change = await in_state(team, state)
    assert change["state"] == state
    allowed, target = ACTIONS[action]
    r = await perform(team, action, change["id"])
    after = await team.call(team.owner, "GET", f"/changes/{change['id']}")
    if state in allowed:
        assert r.status_code == 200, r.text
        assert r.json()["state"] == target == after.json()["state"]
    else:
        body = assert_problem(r, 409)
        assert body["state"] == state, body
        assert state in body["detail"]
        assert after.json() == change  # nothing changed


async def test_an_approved_change_needs_every_required_approval(team: Team) -> None:
    change = await team.submitted(team.engineer, required_approvals=2)
    r = await team.act(team.approver, change["id"], "approve", {"comment": "fine by me"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["approval_count"]) == ("submitted", 1)
    r = await team.act(team.admin, change["id"], "approve")
    assert (r.json()["state"], r.json()["approval_count"]) == ("approved", 2)
    approvals = r.json()["approvals"]
    assert [(a["approver_id"], a["decision"]) for a in approvals] == [
        (team.approver.id, "approve"),
        (team.admin.id, "approve"),
    ]
    assert approvals[0]["comment"] == "fine by me" and approvals[0]["created_at"]
    # A third approver finds it approved already.
    assert_problem(await team.act(team.owner, change["id"], "approve"), 409)


async def test_a_rejection_is_listed_with_its_reason(team: Team) -> None:
    change = await team.submitted(team.engineer, required_approvals=3)
    await team.act(team.approver, change["id"], "approve")
    r = await team.act(team.admin, change["id"], "reject", {"reason": "not in the freeze"})
    assert r.json()["state"] == "rejected" and r.json()["decided_at"]
    assert [(a["decision"], a["comment"]) for a in r.json()["approvals"]] == [
        ("approve", None),
        ("reject", "not in the freeze"),
    ]


@pytest.mark.parametrize("action", ["submit", "cancel", "edit"])
async def test_only_the_requester_submits_edits_or_cancels(team: Team, action: str) -> None:
    change = await team.change(team.engineer)
    other = team.admin  # holds change.create, but did not request it
    if action == "edit":
        r = await team.call(other, "PATCH", f"/changes/{change['id']}", {"title": "Mine now"})
    else:
        r = await team.act(other, change["id"], action)
    assert "requester" in assert_problem(r, 403)["detail"]
    after = await team.call(team.owner, "GET", f"/changes/{change['id']}")
    assert after.json() == change


async def test_implement_by_the_requester_or_a_change_creator_only(team: Team) -> None:
    change = await team.approved(team.engineer, team.approver)
    assert_problem(await team.act(team.viewer, change["id"], "implement"), 403)
    assert_problem(await team.act(team.approver, change["id"], "implement"), 403)
    r = await team.act(team.admin, change["id"], "implement", {"notes": "rolled out"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["implemented_by"], body["implementation_notes"]) == (
        "implemented",
        team.admin.id,
        "rolled out",
    )


async def test_a_draft_is_edited_and_bad_input_is_refused(team: Team) -> None:
    change = await team.change(team.engineer)
    r = await team.call(
        team.engineer,
        "PATCH",
        f"/changes/{change['id']}",
        {"risk": "high", "required_approvals": 3, "planned_start": "2030-01-01T10:00:00Z"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["risk"], r.json()["required_approvals"]) == ("high", 3)
    bad = [
        {"planned_end": "2029-12-31T10:00:00Z"},  # before the planned start
        {"provider_id": "00000000-0000-7000-8000-000000000000"},  # no such provider
    ]
    for body in bad:
        assert_problem(
            await team.call(team.engineer, "PATCH", f"/changes/{change['id']}", body), 400
        )
    invalid = [
        {"risk": "extreme"},
        {"required_approvals": 6},
        {"required_approvals": 0},
        {"title": None},
        {"state": "approved"},
        {"requested_by": team.owner.id},
        {"approval_count": 5},
    ]
    for body in invalid:
        r = await team.call(team.engineer, "PATCH", f"/changes/{change['id']}", body)
        assert_problem(r, 422)
    after = await team.call(team.engineer, "GET", f"/changes/{change['id']}")
    assert after.json()["state"] == "draft" and after.json()["approval_count"] == 0
    assert after.json()["requested_by"] == team.engineer.id


async def test_create_validates_its_body(fresh_team: Team) -> None:
    team = fresh_team
    base = {"title": "t", "description": "d", "risk": "low"}
    for body in (
        {**base, "risk": "none"},
        {**base, "required_approvals": 9},
        {**base, "planned_start": "2030-01-02T00:00:00Z", "planned_end": "2030-01-01T00:00:00Z"},
        {**base, "planned_start": "2030-01-02T00:00:00"},  # no time zone
        {**base, "state": "approved"},
        {**base, "workspace_id": "00000000-0000-7000-8000-000000000000"},
        {"title": "t", "risk": "low"},
    ):
        assert_problem(await team.call(team.engineer, "POST", "/changes", body), 422)
    r = await team.call(
        team.engineer,
        "POST",
        "/changes",
        {**base, "provider_id": "00000000-0000-7000-8000-000000000000"},
    )
    assert_problem(r, 400)
    assert (await team.api.all(team.owner, team.slug, "changes")) == []


async def test_lists_speak_the_query_language(fresh_team: Team) -> None:
    team = fresh_team
    a = await team.submitted(team.engineer, risk="high")
    b = await team.change(team.admin, risk="low")
    r = await team.call(team.viewer, "GET", "/changes?state=submitted")
    assert [c["id"] for c in r.json()["data"]] == [a["id"]]
    r = await team.call(team.viewer, "GET", f"/changes?requested_by={team.admin.id}")
    assert [c["id"] for c in r.json()["data"]] == [b["id"]]
    r = await team.call(team.viewer, "GET", '/changes?risk__in=["high","medium"]&sort=created_at')
    assert [c["id"] for c in r.json()["data"]] == [a["id"]]
    r = await team.call(team.viewer, "GET", "/changes?created_at__gte=2000-01-01&limit=1")
    assert len(r.json()["data"]) == 1 and r.json()["next_cursor"]
    r = await team.call(team.viewer, "GET", "/changes/distinct/state")
    assert r.json()["data"] == ["draft", "submitted"]
    r = await team.call(team.viewer, "POST", "/changes/search/risk", ["low"])
    assert [c["id"] for c in r.json()["data"]] == [b["id"]]
    assert_problem(await team.call(team.viewer, "GET", "/changes?state=approvedish"), 400)
    assert_problem(await team.call(team.viewer, "GET", "/changes?colour=red"), 400)


async def test_a_bulk_approval_shows_in_each_changes_history(team):
    """Bulk approval changes several changes at once: each one's history shows its approval,
    with the state it left, like a single approval does."""
    ids = [(await team.submitted(team.engineer))["id"] for _ in range(2)]
    r = await team.call(team.admin, "POST", "/changes/bulk-approve", {"ids": ids})
    assert r.status_code == 200, r.text
    assert [x["outcome"] for x in r.json()["results"]] == ["approved", "approved"]
    for change_id in ids:
        history = await team.call(team.owner, "GET", f"/history/change/{change_id}")
        assert history.status_code == 200, history.text
        entries = history.json()["data"]
        assert [e["action"] for e in entries] == ["create", "submit", "approve"], entries
        assert entries[-1]["changes"]["state"] == {"before": "submitted", "after": "approved"}
