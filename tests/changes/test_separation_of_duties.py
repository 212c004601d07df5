"""Separation of duties: nobody approves or rejects a change they requested — whatever their
role (every built-in role, a custom role holding every permission), through single or bulk
approval, or by writing an approval row directly as the runtime role. One decision per person
per change."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.security.permissions import BUILTIN_ROLES, PERMISSIONS
from tests.changes.conftest import Team
from tests.helpers import User, assert_problem

ROLES = [*BUILTIN_ROLES, "custom-every-permission"]


async def _set_role(team: Team, member: User, role: str, admin_engine: Any) -> None:
    """Give `member` (who requested a change as an engineer) the role under test."""
    if role == "platform_admin":  # granted by the installation only
        async with admin_engine.begin() as conn:
            await conn.execute(
                text("UPDATE membership SET role = 'platform_admin' WHERE user_id = :u"),
                {"u": member.id},
            )
        return
    if role.startswith("custom"):
        r = await team.call(
            team.owner,
            "POST",
            "/roles",
            {
                "name": f"all-{uuid.uuid4().hex[:6]}",
                "inherits_from": "viewer",
                "grants": list(PERMISSIONS),
            },
        )
        assert r.status_code == 201, r.text
        assert set(r.json()["permissions"]) == set(PERMISSIONS)
        role = r.json()["id"]
    r = await team.call(team.owner, "PATCH", f"/members/{member.id}", {"role": role})
    assert r.status_code == 200, r.text


async def _decisions(admin_engine: Any, change_id: str) -> list[Any]:
    async with admin_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT approver_id, decision FROM change_approval WHERE change_id = :c"),
            {"c": change_id},
        )
        return list(rows)


@pytest.mark.parametrize("role", ROLES)
async def test_nobody_decides_on_their_own_change(team: Team, role: str, api, admin_engine) -> None:
    requester = await api.user(f"requester-{role[:10]}")
    await api.add_member(team.owner, team.slug, requester, "engineer")
    requester.id = (await api.me(requester))["id"]
    change = await team.submitted(requester)
    await _set_role(team, requester, role, admin_engine)
    held = set(PERMISSIONS) if role.startswith("custom") else BUILTIN_ROLES[role]

    approve = await team.act(requester, change["id"], "approve")
    reject = await team.act(requester, change["id"], "reject", {"reason": "mine"})
    bulk = await team.call(requester, "POST", "/changes/bulk-approve", {"ids": [change["id"]]})
    for r in (approve, reject):
        body = assert_problem(r, 403)
        if "change.approve" in held:
            assert "Separation of duties" in body["detail"], body
    if "change.bulk_approve" in held:
        assert bulk.status_code == 200, bulk.text
        [result] = bulk.json()["results"]
        assert result["outcome"] == "refused" and "Separation of duties" in result["reason"]
    else:
        assert_problem(bulk, 403)

    after = await team.call(team.owner, "GET", f"/changes/{change['id']}")
    assert (after.json()["state"], after.json()["approvals"]) == ("submitted", [])
    assert await _decisions(admin_engine, change["id"]) == []
    # Someone else still can.
    r = await team.act(team.approver, change["id"], "approve")
    assert r.json()["state"] == "approved", r.text


async def test_one_decision_per_person(team: Team, admin_engine) -> None:
    change = await team.submitted(team.engineer, required_approvals=3)
    assert (await team.act(team.approver, change["id"], "approve")).status_code == 200
    again = await team.act(team.approver, change["id"], "approve")
    assert assert_problem(again, 409)["state"] == "submitted"
    flip = await team.act(team.approver, change["id"], "reject", {"reason": "changed my mind"})
    assert_problem(flip, 409)
    bulk = await team.call(team.admin, "POST", "/changes/bulk-approve", {"ids": [change["id"]] * 3})
    assert [r["outcome"] for r in bulk.json()["results"]] == ["approved"]  # once per id
    bulk = await team.call(team.admin, "POST", "/changes/bulk-approve", {"ids": [change["id"]]})
    assert bulk.json()["results"][0]["outcome"] == "refused"
    after = (await team.call(team.owner, "GET", f"/changes/{change['id']}")).json()
    assert (after["state"], after["approval_count"], len(after["approvals"])) == ("submitted", 2, 2)
    assert len(await _decisions(admin_engine, change["id"])) == 2


async def _runtime_tx(runtime_engine: Any, workspace_id: str, user_id: str) -> Any:
    conn = await runtime_engine.connect()
    await conn.begin()
    for setting, value in (
        ("current_workspace_id", uuid.UUID(workspace_id)),
        ("current_user_id", uuid.UUID(user_id)),
        ("unlimited_visibility", "on"),
    ):
        await conn.exec_driver_sql(f"SET LOCAL app.{setting} = '{value}'")
    return conn


INSERT = (
    "INSERT INTO change_approval (workspace_id, change_id, approver_id, requested_by, decision) "
    "VALUES (:ws, :c, :a, :r, :d)"
)


@pytest.mark.parametrize(
    "forged",
    [
        "self-approval",  # approver = requester: the CHECK refuses it
        "forged requester",  # another requester named: the foreign key refuses it
        "second decision",  # the same approver again: the primary key refuses it
    ],
)
async def test_the_database_refuses_what_the_app_refuses(
    team: Team, api, runtime_engine, forged: str
) -> None:
    change = await team.submitted(team.engineer)
    ws = await api.workspace_id(team.owner, team.slug)
    values = {
        "ws": ws,
        "c": change["id"],
        "a": team.engineer.id,
        "r": team.engineer.id,
        "d": "approve",
    }
    if forged == "forged requester":
        values["r"] = team.admin.id
    if forged == "second decision":
        values.update(a=team.approver.id)
        assert (await team.act(team.approver, change["id"], "approve")).status_code == 200
    conn = await _runtime_tx(runtime_engine, ws, team.engineer.id)
    try:
        with pytest.raises(DBAPIError) as refused:
            await conn.execute(text(INSERT), values)
        sqlstate = refused.value.orig.sqlstate  # type: ignore[union-attr]
        assert (
            sqlstate
            == {
                "self-approval": "23514",
                "forged requester": "23503",
                "second decision": "23505",
            }[forged]
        )
    finally:
        await conn.rollback()
        await conn.close()


async def test_the_runtime_role_cannot_rewrite_decisions_or_overcount(
    team: Team, api, runtime_engine
) -> None:
    change = await team.approved(team.engineer, team.approver)
    ws = await api.workspace_id(team.owner, team.slug)
    for sql, sqlstate in (
        # Decisions are never edited: no UPDATE privilege.
        ("UPDATE change_approval SET approver_id = requested_by WHERE change_id = :c", "42501"),
        # More approvals than required, or approved without them: CHECKs.
        ("UPDATE change_request SET approval_count = 2 WHERE id = :c", "23514"),
        ("UPDATE change_request SET state = 'submitted' WHERE id = :c", "23514"),
    ):
        conn = await _runtime_tx(runtime_engine, ws, team.engineer.id)
        try:
            with pytest.raises(DBAPIError) as refused:
                await conn.execute(text(sql), {"c": change["id"]})
            assert refused.value.orig.sqlstate == sqlstate, sql  # type: ignore[union-attr]
        finally:
            await conn.rollback()
            await conn.close()


async def test_bulk_approve_answers_per_id(fresh_team: Team, api) -> None:
    team = fresh_team
    mine = await team.submitted(team.admin)
    ok = await team.submitted(team.engineer)
    draft = await team.change(team.engineer)
    done = await team.approved(team.engineer, team.approver)
    other = await api.user("other-owner")
    other_slug = await api.workspace(other)
    r = await api.client.post(
        f"/ws/{other_slug}/api/v1/changes",
        json={"title": "theirs", "description": "", "risk": "low"},
        headers=other.headers,
    )
    theirs = r.json()["id"]
    await api.client.post(f"/ws/{other_slug}/api/v1/changes/{theirs}/submit", headers=other.headers)
    unknown = str(uuid.uuid4())
    ids = [theirs, mine["id"], ok["id"], draft["id"], done["id"], unknown]
    r = await team.call(team.admin, "POST", "/changes/bulk-approve", {"ids": ids, "comment": "CAB"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == ids
    by_id = {x["id"]: x for x in results}
    assert by_id[ok["id"]] == {
        "id": ok["id"],
        "outcome": "approved",
        "state": "approved",
        "reason": None,
    }
    assert "Separation of duties" in by_id[mine["id"]]["reason"]
    assert by_id[draft["id"]]["state"] == "draft" and by_id[done["id"]]["state"] == "approved"
    for missing in (theirs, unknown):
        assert by_id[missing] == {
            "id": missing,
            "outcome": "refused",
            "state": None,
            "reason": "Change request not found",
        }
    got = await team.call(team.owner, "GET", f"/changes/{ok['id']}")
    assert got.json()["approvals"][0]["comment"] == "CAB"
    # The other workspace's change is untouched.
    theirs_now = await api.client.get(
        f"/ws/{other_slug}/api/v1/changes/{theirs}", headers=other.headers
    )
    assert (theirs_now.json()["state"], theirs_now.json()["approvals"]) == ("submitted", [])
    for body in (
        {"ids": []},
        {"ids": ["nope"]},
        {"ids": [unknown] * 101},
        {"ids": [unknown], "x": 1},
    ):
        assert_problem(await team.call(team.admin, "POST", "/changes/bulk-approve", body), 422)
    # Bulk approval needs its own permission: approvers have only change.approve.
    assert_problem(
        await team.call(team.approver, "POST", "/changes/bulk-approve", {"ids": [ok["id"]]}), 403
    )
