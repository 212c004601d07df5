"""TOTP: enrolment with a QR code, confirmation with recovery codes, the two-step login, a code
accepted once (replay refused), one step of drift either way and no more, throttled guessing,
recovery codes used once, turning it off, and workspaces that require it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text

from tests.helpers import PASSWORD, Api, User, assert_problem


async def settle() -> float:
    """Now, away from a step boundary (so "the step before" means the same to the test and to
    the server)."""
    if time.time() % 30 > 24:
        await asyncio.sleep(31 - time.time() % 30)
    return time.time()


async def enrol(client: httpx.AsyncClient, user: User) -> tuple[pyotp.TOTP, list[str]]:
    r = await client.post("/api/v1/me/mfa/totp", headers=user.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (
        body["otpauth_uri"].startswith("otpauth://totp/") and "issuer=Warden" in body["otpauth_uri"]
    )
    png = await client.get(body["qr_png"], headers=user.headers)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    totp = pyotp.TOTP(body["secret"])
    now = await settle()
    r = await client.post(
        "/api/v1/me/mfa/totp/confirm", json={"code": totp.at(now)}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    # Once on, the secret is never shown again.
    assert_problem(await client.get(body["qr_png"], headers=user.headers), 404)
    return totp, codes


async def password_step(client: httpx.AsyncClient, user: User) -> str:
    r = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mfa_required"] is True and "access_token" not in body
    return str(body["mfa_token"])


async def code_step(client: httpx.AsyncClient, mfa_token: str, code: str) -> httpx.Response:
    return await client.post("/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": code})


async def test_enrolment_and_two_step_login(api: Api, client: httpx.AsyncClient) -> None:
    user = await api.user("mfa")
    r = await client.post("/api/v1/me/mfa/totp", headers=user.headers)
    wrong = await client.post(
        "/api/v1/me/mfa/totp/confirm", json={"code": "000000"}, headers=user.headers
    )
    assert_problem(wrong, 409)
    totp, _ = await enrol(client, user)
    status = (await client.get("/api/v1/me/mfa", headers=user.headers)).json()
    assert status["enabled"] and status["recovery_codes_left"] == 10
    token = await password_step(client, user)
    # The MFA token is good for the second step only.
    assert_problem(
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}), 401
    )
    form = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}
    )
    assert_problem(form, 401)
    now = await settle()
    r = await code_step(client, token, totp.at(now + 30))
    assert r.status_code == 200, r.text
    assert (
        await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
    ).status_code == 200
    # An access token is no MFA token.
    assert_problem(await code_step(client, r.json()["access_token"], totp.at(now)), 401)


async def test_a_code_is_accepted_once_and_drift_is_one_step(
    api: Api, client: httpx.AsyncClient
) -> None:
    user = await api.user("mfa-drift")
    r = await client.post("/api/v1/me/mfa/totp", headers=user.headers)
    totp = pyotp.TOTP(r.json()["secret"])
    now = await settle()
    r = await client.post(
        "/api/v1/me/mfa/totp/confirm", json={"code": totp.at(now - 30)}, headers=user.headers
    )
    assert r.status_code == 200, "one step behind is accepted"
    token = await password_step(client, user)
    assert_problem(await code_step(client, token, totp.at(now - 30)), 401)  # replayed
    assert_problem(await code_step(client, token, totp.at(now + 60)), 401)  # two ahead
    assert_problem(await code_step(client, token, totp.at(now - 60)), 401)  # two behind
    assert (await code_step(client, token, totp.at(now))).status_code == 200
    assert_problem(await code_step(client, token, totp.at(now)), 401)  # replayed
    token = await password_step(client, user)
    assert (await code_step(client, token, totp.at(now + 30))).status_code == 200  # one ahead
    assert_problem(await code_step(client, token, totp.at(now)), 401)  # older than the last


async def test_guessing_is_throttled(api: Api, client: httpx.AsyncClient, settings: Any) -> None:
    user = await api.user("mfa-guess")
    totp, _ = await enrol(client, user)
    token = await password_step(client, user)
    for guess in range(settings.mfa_max_failures):
        assert_problem(await code_step(client, token, f"{guess:06d}"), 401)
    now = await settle()
    r = await code_step(client, token, totp.at(now + 30))
    assert_problem(r, 429)
    assert int(r.headers["retry-after"]) > 0


async def test_recovery_codes_work_once_and_turn_it_off(
    api: Api, client: httpx.AsyncClient, admin_engine
) -> None:
    user = await api.user("mfa-recovery")
    totp, codes = await enrol(client, user)
    token = await password_step(client, user)
    assert (await code_step(client, token, codes[0])).status_code == 200
    assert_problem(await code_step(client, token, codes[0]), 401)
    assert (await client.get("/api/v1/me/mfa", headers=user.headers)).json()[
        "recovery_codes_left"
    ] == 9
    async with admin_engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT m.totp_secret, m.recovery_hashes FROM user_mfa m "
                    "JOIN app_user u ON u.id = m.user_id WHERE u.email = :e"
                ),
                {"e": user.email},
            )
        ).one()
    assert totp.secret.encode() not in bytes(stored.totp_secret)  # encrypted at rest
    assert all(c.encode() not in bytes(h) for c in codes for h in stored.recovery_hashes)
    r = await client.request(
        "DELETE", "/api/v1/me/mfa/totp", json={"code": "999999"}, headers=user.headers
    )
    assert_problem(r, 409)
    r = await client.request(
        "DELETE", "/api/v1/me/mfa/totp", json={"code": codes[1]}, headers=user.headers
    )
    assert r.status_code == 204
    r = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert "access_token" in r.json()


@pytest.mark.parametrize("with_key", [False, True], ids=["token", "api key"])
async def test_a_workspace_can_require_mfa(with_key: bool, api: Api, client: httpx.AsyncClient):
    owner, member = await api.user("owner"), await api.user("member")
    slug = await api.workspace(owner)
    await api.add_member(owner, slug, member, "engineer")
    settings_url = f"/ws/{slug}/api/v1/settings"
    r = await client.patch(settings_url, json={"require_mfa": True}, headers=owner.headers)
    assert_problem(r, 409)  # the owner has no second factor yet
    await enrol(client, owner)
    r = await client.patch(settings_url, json={"require_mfa": True}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["require_mfa"] is True
    headers = member.headers
    if with_key:
        r = await client.post("/api/v1/me/api-keys", json={"name": "k"}, headers=member.headers)
        headers = {"X-API-Key": r.json()["secret"]}
    r = await client.get(f"/ws/{slug}/api/v1/providers", headers=headers)
    body = assert_problem(r, 403)
    assert body["code"] == "mfa_required" and body["type"].endswith("/mfa-required")
    r = await client.post(
        "/api/v1/me/has-permission",
        json={"workspace": slug, "permission": "provider.read"},
        headers=member.headers,
    )
    assert r.json()["allowed"] is False and "MFA" in r.json()["reason"]
    await enrol(client, member)
    assert (await client.get(f"/ws/{slug}/api/v1/providers", headers=headers)).status_code == 200
    assert (
        await client.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
    ).status_code == 200
