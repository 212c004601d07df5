"""No escalation through field rules: a role's base decides which fields its holder sees, so the
no-escalation rule compares them too. A manager from whom provider uids (and member emails)
are hidden cannot give themselves a role with the same permissions on a base that shows them."""

from __future__ import annotations

from tests.attacks.common import ENGINEER_ONLY, workspace
from tests.helpers import Api


async def _sees(ws, user) -> dict[str, bool]:
    providers = (await ws.get(user, "providers")).text
    members = (await ws.get(user, "members")).text
    return {
        "uid": ws.us["uid"] in providers,
        "email": ws.owner.email in members,
    }


async def test_viewer_based_manager_cannot_unhide_uids_with_a_role_of_another_base(api: Api):
    ws = await workspace(api)
    mgr_role = await ws.role(
        {"name": "manager", "inherits_from": "viewer", "grants": ["role.manage", "member.manage"]}
    )
    actor, actor_id = await ws.member("mgr", mgr_role)
    assert await _sees(ws, actor) == {"uid": False, "email": False}

    # Same permissions as the actor, on the approver base (no field rules there).
    r = await ws.client.post(
        f"{ws.base}/roles",
        json={
            "name": "same but approver",
            "inherits_from": "approver",
            "revokes": ["change.approve"],
            "grants": ["role.manage", "member.manage"],
        },
        headers=actor.headers,
    )
    steps = [("create", r.status_code)]
    if r.status_code == 201:
        same = r.json()
        assert set(same["permissions"]) == set(
            next(m for m in (await api.me(actor))["memberships"] if m["workspace"] == ws.slug)[
                "permissions"
            ]
        )
        r = await ws.client.patch(
            f"{ws.base}/members/{actor_id}", json={"role": same["id"]}, headers=actor.headers
        )
        steps.append(("assign to self", r.status_code))
    # The owner hid uids and emails from this member; they must stay hidden.
    assert await _sees(ws, actor) == {"uid": False, "email": False}, steps


async def test_member_manager_cannot_take_an_existing_role_that_shows_hidden_fields(api: Api):
    """member.manage alone is enough when the owner made a read-only role on an engineer base
    (a common 'read-only ops' role): its permissions are a subset of the actor's."""
    ws = await workspace(api)
    readonly_ops = await ws.role(
        {"name": "read-only ops", "inherits_from": "engineer", "revokes": ENGINEER_ONLY}
    )
    mgr_role = await ws.role(
        {"name": "member manager", "inherits_from": "viewer", "grants": ["member.manage"]}
    )
    actor, actor_id = await ws.member("mgr", mgr_role)
    assert await _sees(ws, actor) == {"uid": False, "email": False}
    r = await ws.client.patch(
        f"{ws.base}/members/{actor_id}", json={"role": readonly_ops}, headers=actor.headers
    )
    assert await _sees(ws, actor) == {"uid": False, "email": False}, (r.status_code, r.text)


async def test_regional_manager_cannot_unhide_uids_keeping_the_same_rows(api: Api):
    """The approver base carries the same region grant as the viewer base, so the rows check
    passes; only the field rules differ."""
    ws = await workspace(api)
    mgr_role = await ws.role(
        {"name": "regional", "inherits_from": "viewer", "grants": ["role.manage", "member.manage"]}
    )
    actor, actor_id = await ws.member("regional", mgr_role, {"region": "us"})
    assert await _sees(ws, actor) == {"uid": False, "email": False}
    r = await ws.client.post(
        f"{ws.base}/roles",
        json={
            "name": "regional approver",
            "inherits_from": "approver",
            "revokes": ["change.approve"],
            "grants": ["role.manage", "member.manage"],
        },
        headers=actor.headers,
    )
    steps = [("create", r.status_code)]
    if r.status_code == 201:
        r = await ws.client.patch(
            f"{ws.base}/members/{actor_id}", json={"role": r.json()["id"]}, headers=actor.headers
        )
        steps.append(("assign to self", r.status_code))
    assert await _sees(ws, actor) == {"uid": False, "email": False}, steps
