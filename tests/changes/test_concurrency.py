"""Concurrent decisions on one change never exceed or double-count: they queue on the change's
row lock. To be sure the requests really overlap, the test holds that lock itself while they
start, then lets go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import httpx
from sqlalchemy import text

from tests.changes.conftest import Team
from tests.helpers import User, assert_problem


async def _all_at_once(
    admin_engine: Any, change_id: str, calls: list[Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    async with admin_engine.connect() as conn:
        await conn.begin()
        ws = (
            await conn.execute(
                text("SELECT workspace_id FROM change_request WHERE id = :c"), {"c": change_id}
            )
        ).scalar_one()
        await conn.execute(  # by the distribution column too: on Citus a lock names its shard
            text("SELECT 1 FROM change_request WHERE workspace_id = :w AND id = :c FOR UPDATE"),
            {"w": ws, "c": change_id},
        )
        tasks = [asyncio.ensure_future(c) for c in calls]
        await asyncio.sleep(0.5)  # every request is now waiting for the lock
        assert not any(t.done() for t in tasks)
        await conn.rollback()
    return list(await asyncio.gather(*tasks))


async def _approvals(admin_engine: Any, change_id: str) -> list[Any]:
    async with admin_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT a.approver_id, c.approval_count, c.state FROM change_approval a "
                "JOIN change_request c ON c.workspace_id = a.workspace_id AND c.id = a.change_id "
                "WHERE a.change_id = :c"
            ),
            {"c": change_id},
        )
        return list(rows)


def _approve(team: Team, user: User, change_id: str) -> Awaitable[httpx.Response]:
    return team.act(user, change_id, "approve")


async def test_two_approvers_at_once_on_a_one_approval_change(team: Team, admin_engine) -> None:
    for _ in range(3):
        change = await team.submitted(team.engineer)
        responses = await _all_at_once(
            admin_engine,
            change["id"],
            [_approve(team, team.approver, change["id"]), _approve(team, team.admin, change["id"])],
        )
        assert sorted(r.status_code for r in responses) == [200, 409]
        loser = next(r for r in responses if r.status_code == 409)
        assert assert_problem(loser, 409)["state"] == "approved"
        rows = await _approvals(admin_engine, change["id"])
        assert len(rows) == 1 and rows[0].approval_count == 1 and rows[0].state == "approved"


async def test_three_approvers_at_once_on_a_two_approval_change(team: Team, admin_engine) -> None:
    change = await team.submitted(team.engineer, required_approvals=2)
    responses = await _all_at_once(
        admin_engine,
        change["id"],
        [_approve(team, u, change["id"]) for u in (team.approver, team.admin, team.owner)],
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 409]
    rows = await _approvals(admin_engine, change["id"])
    assert len(rows) == 2 and {r.approval_count for r in rows} == {2}
    assert rows[0].state == "approved"


async def test_one_approver_twice_at_once_counts_once(team: Team, admin_engine) -> None:
    change = await team.submitted(team.engineer, required_approvals=2)
    single = _approve(team, team.approver, change["id"])
    bulk = team.call(team.admin, "POST", "/changes/bulk-approve", {"ids": [change["id"]]})
    twice = _approve(team, team.admin, change["id"])
    responses = await _all_at_once(admin_engine, change["id"], [single, bulk, twice])
    assert responses[0].status_code == 200
    outcomes = {responses[1].json()["results"][0]["outcome"], responses[2].status_code}
    assert outcomes == {"approved", 409} or outcomes == {"refused", 200}
    rows = await _approvals(admin_engine, change["id"])
    assert len(rows) == 2 and {r.approval_count for r in rows} == {2}


async def test_approve_and_reject_at_once_decide_once(team: Team, admin_engine) -> None:
    change = await team.submitted(team.engineer)
    responses = await _all_at_once(
        admin_engine,
        change["id"],
        [
            _approve(team, team.approver, change["id"]),
            team.act(team.admin, change["id"], "reject", {"reason": "no"}),
            team.act(team.engineer, change["id"], "cancel"),
        ],
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    final = (await team.call(team.owner, "GET", f"/changes/{change['id']}")).json()
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    assert final["state"] == ("approved", "rejected", "cancelled")[winner]
    assert len(final["approvals"]) == (1 if winner < 2 else 0)
