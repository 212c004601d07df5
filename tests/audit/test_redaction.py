"""Secrets never reach the log; what reaches it is storable."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from app.security.audit import REDACTED, _bounded, redact
from tests.helpers import PASSWORD


def test_redact_replaces_secret_values_at_any_depth():
    value = {
        "password": "p",
        "new_password": "p",
        "refresh_token": "t",
        "client_secret": "s",
        "api_key": "k",
        "apiKey": "k",
        "Authorization": "Bearer x",
        "private_key": "k",
        "key": "k",
        "credentials": {"user": "u"},
        "cookie": "c",
        "api_key_id": "0190c8e2-4b7a-7cc3-9a51-1f1b2c3d4e5f",
        "role_key": "viewer",
        "nested": [{"token": "t", "name": "ok"}],
        "alias": "keep\x00me",
    }
    out = redact(value)
    for key in (
        "password",
        "new_password",
        "refresh_token",
        "client_secret",
        "api_key",
        "apiKey",
        "Authorization",
        "private_key",
        "key",
        "credentials",
        "cookie",
    ):
        assert out[key] == REDACTED, key
    assert out["api_key_id"] == value["api_key_id"] and out["role_key"] == "viewer"
    assert out["nested"] == [{"token": REDACTED, "name": "ok"}]
    assert out["alias"] == "keep\ufffdme"
    assert redact("\ud800x") == "?x"
    assert _bounded({"a": "x" * 20000}) == {"_omitted": "too large", "bytes": 20008}


async def test_secrets_in_calls_are_redacted_in_the_stored_records(api, client, ws, admin_engine):
    user = await api.user("someone")
    await api.add_member(ws.owner, ws.slug, user, "viewer")
    uid = (await api.me(user))["id"]
    rid = uuid.uuid4().hex
    secret = "s3cr3t-" + uuid.uuid4().hex
    r = await client.patch(
        f"{ws.base}/members/{uid}",
        headers={**ws.owner.headers, "x-request-id": rid},
        json={"attributes": {"region": "eu", "api_token": secret, "password": secret}},
    )
    assert r.status_code == 200
    r = await client.get(
        f"{ws.base}/providers", params={"alias": "x", "token": secret}, headers=ws.owner.headers
    )
    assert r.status_code == 400  # unknown field: not a success, not recorded
    await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    async with admin_engine.connect() as conn:
        for table in ("audit_record", "user_event"):
            stored = (await conn.execute(text(f"SELECT * FROM {table}"))).mappings().all()
            assert stored
            for row in stored:
                assert secret not in str(dict(row)) and PASSWORD not in str(dict(row))
                assert user.refresh_token not in str(dict(row))
        record = (
            await conn.execute(
                text("SELECT body, state FROM audit_record WHERE request_id = :r"), {"r": rid}
            )
        ).one()
    assert record.body["attributes"]["api_token"] == REDACTED
    assert record.body["attributes"]["password"] == REDACTED
    assert record.state["attributes"]["region"] == "eu"


async def test_unstorable_text_does_not_break_recording(api, client, ws):
    """NUL and lone surrogates in what a successful call carried are cleaned, not a 5xx."""
    agent = "agent\x7f\u00e9".encode("latin-1")
    r = await client.get(
        f"{ws.base}/providers",
        params={"sort": "alias"},
        headers={**ws.owner.headers, "user-agent": agent},
    )
    assert r.status_code == 200
    r = await client.post(
        f"{ws.base}/providers/search/alias",
        json=["caf\u00e9", "\U0001f680"],
        headers=ws.owner.headers,
    )
    assert r.status_code == 200
    listed = await client.get(
        f"{ws.base}/audit", params={"action": "search"}, headers=ws.owner.headers
    )
    assert listed.json()["data"][0]["body"] == ["caf\u00e9", "\U0001f680"]
