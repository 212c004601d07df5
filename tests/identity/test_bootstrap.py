"""The first user (`warden create-user`) and the two security schemes Swagger UI offers."""

from __future__ import annotations

import asyncio
import io
import secrets

import httpx
import pytest

from app.cli import main
from tests.helpers import PASSWORD, assert_problem


@pytest.fixture
def cli_env(database: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_DATABASE_URL", database["runtime_url"])
    monkeypatch.setenv("WARDEN_ADMIN_DATABASE_URL", database["admin_url"])
    monkeypatch.setenv("WARDEN_JWT_SECRET", secrets.token_urlsafe(40))
    monkeypatch.setenv("WARDEN_SIGNUP_ENABLED", "false")
    monkeypatch.setenv("WARDEN_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("WARDEN_ARGON2_MEMORY_COST", "8192")


async def _run(monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return await asyncio.to_thread(main, list(args))


async def test_create_user_bootstraps_an_installation(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient, capsys
) -> None:
    email = f"root-{secrets.token_hex(4)}@example.com"
    args = ("create-user", email, "--name", "Root", "--password-stdin", "--platform-admin")
    assert await _run(monkeypatch, PASSWORD + "\n", *args) == 0
    assert "platform admin granted" in capsys.readouterr().out
    assert await _run(monkeypatch, PASSWORD + "\n", *args) == 1  # exists already
    assert (
        await _run(
            monkeypatch,
            "short\n",
            "create-user",
            "x@example.com",
            "--name",
            "X",
            "--password-stdin",
        )
        == 2
    )
    assert "password" in capsys.readouterr().err
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await client.get("/api/v1/platform/workspaces", headers=token)).status_code == 200
    # Without a terminal and without --password-stdin, nothing is created. (A fresh address:
    # failed logins of a fixed one add up in the shared Redis across test runs.)
    nobody = f"y-{secrets.token_hex(4)}@example.com"
    assert await _run(monkeypatch, "", "create-user", nobody, "--name", "Y") == 2
    r = await client.post("/api/v1/auth/login", json={"email": nobody, "password": "x"})
    assert_problem(r, 401)


async def test_swagger_offers_the_key_header_as_a_second_scheme(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["APIKey"]["description"],
    }
    assert schemes["OAuth2PasswordBearer"]["type"] == "oauth2"
    operation = spec["paths"]["/ws/{slug}/api/v1/providers"]["get"]
    assert {"APIKey": []} in operation["security"]
    assert {"OAuth2PasswordBearer": []} in operation["security"]
