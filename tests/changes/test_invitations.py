"""Invitations: the no-escalation rule of adding a member, a one-time token stored hashed, a
time limit, and acceptance only by the invited (signed-in) user; anything else creates
nothing."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import text

from tests.changes.conftest import Team
from tests.helpers import Api, User, assert_problem, serve


async def _invite(team: Team, by: User, email: str, role: str) -> Any:
    return await team.call(by, "POST", "/invitations", {"email": email, "role": role})


async def _accept(api: Api, user: User, token: str) -> Any:
    return await api.client.post(f"/api/v1/invitations/{token}/accept", headers=user.headers)


async def _members(team: Team) -> list[str]:
    r = await team.call(team.owner, "GET", "/members?limit=200")
    return sorted(m["user_id"] for m in r.json()["data"])


async def test_invite_accept_and_the_token_is_spent(team: Team, api: Api, admin_engine) -> None:
    newcomer = await api.user("newcomer")
    r = await _invite(team, team.admin, newcomer.email.upper(), "engineer")
    assert r.status_code == 201, r.text
    invitation = r.json()
    token = invitation.pop("token")
    assert (invitation["email"], invitation["role"], invitation["state"]) == (
        newcomer.email,
        "engineer",
        "pending",
    )
    async with admin_engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT token_hash FROM invitation WHERE id = :i"), {"i": invitation["id"]}
            )
        ).scalar_one()
        logged = (
            await conn.execute(
                text("SELECT count(*) FROM audit_record WHERE state::text LIKE :t"),
                {"t": f"%{token.split('.')[-1]}%"},
            )
        ).scalar_one()
    assert bytes(stored) == hashlib.sha256(token.encode()).digest()  # only the hash is kept
    assert logged == 0  # and the token is not in the audit log
    listed = await team.call(team.admin, "GET", "/invitations?state=pending")
    assert invitation["id"] in [i["id"] for i in listed.json()["data"]]
    assert "token" not in listed.json()["data"][0]

    r = await _accept(api, newcomer, token)
    assert r.status_code == 200, r.text
    assert r.json()["workspace"] == team.slug
    r = await team.client.get(f"/ws/{team.slug}/api/v1/changes", headers=newcomer.headers)
    assert r.status_code == 200
    me = await api.me(newcomer)
    assert [(m["workspace"], m["role"]) for m in me["memberships"]] == [(team.slug, "engineer")]
    again = await _accept(api, newcomer, token)
    assert assert_problem(again, 409)["state"] == "accepted"
    got = await team.call(team.admin, "GET", f"/invitations/{invitation['id']}")
    assert (got.json()["state"], got.json()["accepted_by"]) == ("accepted", me["id"])
    assert_problem(await team.call(team.admin, "DELETE", f"/invitations/{invitation['id']}"), 409)
    # The token is in the accepting request's path: no log keeps it (the user's own security
    # log, denials of the second try).
    secret = token.split(".")[-1]
    async with admin_engine.connect() as conn:
        for table in ("user_event", "audit_denial", "audit_record"):
            kept = await conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE path LIKE :t"), {"t": f"%{secret}%"}
            )
            assert kept.scalar_one() == 0, table


async def test_wrong_user_revoked_expired_and_forged_tokens_create_nothing(
    team: Team, api: Api, admin_engine
) -> None:
    invitee, intruder = await api.user("invitee"), await api.user("intruder")
    before = await _members(team)
    token = (await _invite(team, team.owner, invitee.email, "viewer")).json()["token"]
    ws, inv, secret = token.split(".")
    forged = [
        f"{ws}.{inv}.{secret[:-2]}xx",  # wrong secret
        f"{ws}.{'0' * 32}.{secret}",  # another invitation id
        "not-a-token",
        f"{inv}.{ws}.{secret}",
    ]
    for bad in forged:
        assert_problem(await _accept(api, invitee, bad), 404)
    assert_problem(await _accept(api, intruder, token), 404)  # someone else's
    assert (await api.client.post(f"/api/v1/invitations/{token}/accept")).status_code == 401

    expired_token = (await _invite(team, team.owner, intruder.email, "viewer")).json()["token"]
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE invitation SET expires_at = now() - interval '1 second' WHERE email = :e"),
            {"e": intruder.email},
        )
    assert assert_problem(await _accept(api, intruder, expired_token), 409)["state"] == "expired"

    listed = await team.call(team.owner, "GET", f"/invitations?email={invitee.email}")
    [pending] = listed.json()["data"]
    assert (
        await team.call(team.owner, "DELETE", f"/invitations/{pending['id']}")
    ).status_code == 204
    assert assert_problem(await _accept(api, invitee, token), 409)["state"] == "revoked"
    assert await _members(team) == before
    # A revoked or expired invitation makes room for a new one.
    r = await _invite(team, team.owner, invitee.email, "viewer")
    assert r.status_code == 201, r.text


async def test_no_escalation_through_invitations(team: Team, api: Api) -> None:
    email = (await api.user("x")).email
    for by, role, status in (
        (team.admin, "owner", 403),  # only owners make owners
        (team.owner, "platform_admin", 403),  # never granted by a workspace
        (team.engineer, "viewer", 403),  # member.manage needed
        (team.viewer, "viewer", 403),
        (team.admin, "nonsense", 400),
        (team.admin, "00000000-0000-7000-8000-000000000000", 404),  # no such custom role
    ):
        assert_problem(await _invite(team, by, email, role), status)
    r = await team.call(
        team.owner,
        "POST",
        "/roles",
        {
            "name": "auditor-plus",
            "inherits_from": "viewer",
            "grants": ["audit.read", "role.manage"],
        },
    )
    custom = r.json()["id"]
    assert_problem(await _invite(team, team.admin, email, custom), 403)  # admins lack role.manage
    r = await _invite(team, team.owner, email, custom)
    assert r.status_code == 201 and r.json()["custom_role_id"] == custom
    assert_problem(await _invite(team, team.owner, email, "viewer"), 409)  # already pending
    assert_problem(await _invite(team, team.owner, team.viewer.email, "admin"), 409)  # a member
    for body in (
        {"email": "nope", "role": "viewer"},
        {"email": email},
        {"email": email, "role": "viewer", "x": 1},
    ):
        assert_problem(await team.call(team.owner, "POST", "/invitations", body), 422)


def _hours(body: dict[str, Any]) -> float:
    created = datetime.fromisoformat(body["created_at"])
    return (datetime.fromisoformat(body["expires_at"]) - created).total_seconds() / 3600


async def test_the_time_to_live_is_configurable(team: Team, api: Api, settings) -> None:
    r = await _invite(team, team.owner, (await api.user("ttl")).email, "viewer")
    assert 71.9 < _hours(r.json()) < 72.1  # WARDEN_INVITATION_TTL_HOURS defaults to 72
    async with serve(settings.model_copy(update={"invitation_ttl_hours": 5})) as (_, client):
        r = await client.post(
            team.url("/invitations"),
            json={"email": (await api.user("ttl5")).email, "role": "viewer"},
            headers=team.owner.headers,
        )
        assert r.status_code == 201, r.text
        assert 4.9 < _hours(r.json()) < 5.1
