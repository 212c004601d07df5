"""Answers that hold a secret (a key, a TOTP secret, recovery codes, an invitation token) are
shown once and never stored: their routes take no `Idempotency-Key`."""

from __future__ import annotations

from tests.helpers import api_routes, assert_problem

SHOWN_ONCE = {
    "/api/v1/me/api-keys",
    "/api/v1/me/mfa/totp",
    "/api/v1/me/mfa/totp/confirm",
    "/ws/{slug}/api/v1/service-keys",
    "/ws/{slug}/api/v1/invitations",
}


def test_routes_whose_answer_holds_a_secret_take_no_keys(app):
    refusing = {
        route.path
        for route in api_routes(app)
        if "POST" in route.methods and (route.openapi_extra or {}).get("x-idempotency") is False
    }
    assert refusing >= SHOWN_ONCE
    schema = app.openapi()
    for path in SHOWN_ONCE:
        names = {p["name"] for p in schema["paths"][path]["post"].get("parameters", [])}
        assert "Idempotency-Key" not in names, path


async def test_a_key_on_such_a_route_is_refused_and_creates_nothing(api, client):
    user = await api.user("secret")
    r = await client.post(
        "/api/v1/me/api-keys",
        json={"name": "ci"},
        headers={**user.headers, "Idempotency-Key": "k-1"},
    )
    assert_problem(r, 400)
    listed = await client.get("/api/v1/me/api-keys", headers=user.headers)
    assert listed.json()["data"] == []
