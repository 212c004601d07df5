"""Demo data, loaded through the real HTTP API in-process (so it passes every check a client's
request does). Idempotent: a second run finds everything in place."""

from __future__ import annotations

from typing import Any

import httpx

from app.config import Settings

DEMO_PASSWORD = "warden-demo-password"

USERS = {
    "owner@acme.example.com": "Olivia Owner",
    "admin@acme.example.com": "Adam Admin",
    "approver@acme.example.com": "April Approver",
    "engineer@acme.example.com": "Eric Engineer",
    "viewer@acme.example.com": "Vera Viewer",
    "owner@globex.example.com": "Gus Globex",
    "platform@warden.example.com": "Pat Platform",
}
PLATFORM_ADMIN = "platform@warden.example.com"

WORKSPACES: dict[str, dict[str, Any]] = {
    "acme-prod": {
        "name": "Acme production",
        "owner": "owner@acme.example.com",
        "members": {
            "admin@acme.example.com": "admin",
            "approver@acme.example.com": "approver",
            "engineer@acme.example.com": "engineer",
            "viewer@acme.example.com": "viewer",
        },
        "providers": [
            {"provider_type": "aws", "uid": "123456789012", "alias": "acme-prod", "region": "eu"},
            {"provider_type": "aws", "uid": "210987654321", "alias": "acme-us", "region": "us"},
            {
                "provider_type": "azure",
                "uid": "8f0d2c4e-5b6a-4c3d-9e8f-1a2b3c4d5e6f",
                "alias": "acme-azure",
                "region": "eu",
            },
            {"provider_type": "gcp", "uid": "acme-analytics", "alias": "analytics"},
        ],
    },
    "globex": {
        "name": "Globex",
        "owner": "owner@globex.example.com",
        "members": {},
        "providers": [
            {"provider_type": "aws", "uid": "555555555555", "alias": "globex-main"},
            {"provider_type": "github", "uid": "globex-corp", "alias": "code"},
        ],
    },
}


async def _token(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    if r.status_code == 401:
        r = await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": DEMO_PASSWORD, "name": USERS[email]},
        )
        r.raise_for_status()
        r = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD}
        )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _ok(r: httpx.Response) -> None:
    if r.status_code not in (200, 201, 409):
        raise RuntimeError(f"seeding failed: {r.request.method} {r.request.url.path}: {r.text}")


async def _flag_platform_admin(admin_url: str) -> None:
    """Only the installation (the owner role) can make a platform admin."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE app_user SET is_platform_admin = true WHERE email = :e"),
                {"e": PLATFORM_ADMIN},
            )
    finally:
        await engine.dispose()


async def seed_demo(settings: Settings) -> dict[str, Any]:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"signup_enabled": True}))
    workspace_ids: dict[str, str] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://seed") as client:
            headers = {email: await _token(client, email) for email in USERS}
            for slug, spec in WORKSPACES.items():
                owner = headers[spec["owner"]]
                _ok(
                    await client.post(
                        "/api/v1/workspaces",
                        json={"slug": slug, "name": spec["name"]},
                        headers=owner,
                    )
                )
                for email, role in spec["members"].items():
                    _ok(
                        await client.post(
                            f"/ws/{slug}/api/v1/members",
                            json={"email": email, "role": role},
                            headers=owner,
                        )
                    )
                for provider in spec["providers"]:
                    _ok(
                        await client.post(
                            f"/ws/{slug}/api/v1/providers", json=provider, headers=owner
                        )
                    )
                listed = await client.get("/api/v1/workspaces", headers=owner)
                listed.raise_for_status()
                for ws in listed.json()["data"]:
                    workspace_ids[ws["slug"]] = ws["id"]
    if settings.admin_database_url:
        await _flag_platform_admin(settings.admin_database_url)
    users = {email: "" for email in USERS}
    users[PLATFORM_ADMIN] = "platform admin (GET /api/v1/platform/workspaces), no workspace"
    for slug, spec in WORKSPACES.items():
        users[spec["owner"]] = f"{slug}: owner"
        for email, role in spec["members"].items():
            users[email] = f"{slug}: {role}"
    return {"password": DEMO_PASSWORD, "users": users, "workspaces": workspace_ids}
