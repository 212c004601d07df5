"""Demo data, loaded through the real HTTP API in-process (so it passes every check a client's
request does). Idempotent: a second run finds everything in place."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

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

    from app.db.hardening import owner_sees_every_user

    engine = create_async_engine(admin_url)
    try:
        async with engine.begin() as conn, owner_sees_every_user(conn):
            await conn.execute(
                text("UPDATE app_user SET is_platform_admin = true WHERE email = :e"),
                {"e": PLATFORM_ADMIN},
            )
    finally:
        await engine.dispose()


# Change management demo: (requester, body, what happens next) in acme-prod.
CHANGES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "engineer@acme.example.com",
        {
            "title": "Rotate the acme-prod database credentials",
            "description": "New credentials through the secret store; restart the API pods.",
            "risk": "medium",
            "provider": "acme-prod",
        },
        [("engineer@acme.example.com", "submit")],
    ),
    (
        "engineer@acme.example.com",
        {
            "title": "Upgrade the production Kubernetes cluster",
            "description": "Control plane first, then node groups one by one.",
            "risk": "high",
            "required_approvals": 2,
        },
        [("engineer@acme.example.com", "submit"), ("approver@acme.example.com", "approve")],
    ),
    (
        "admin@acme.example.com",
        {
            "title": "Enable threat detection in every region",
            "description": "Turn it on for the accounts that lack it.",
            "risk": "low",
        },
        [
            ("admin@acme.example.com", "submit"),
            ("approver@acme.example.com", "approve"),
            ("admin@acme.example.com", "implement"),
        ],
    ),
    (
        "engineer@acme.example.com",
        {
            "title": "Tighten the storage bucket policies",
            "description": "Draft: list the buckets first.",
            "risk": "low",
        },
        [],
    ),
]


async def _seed_change_management(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]], slug: str
) -> None:
    """A few change requests in different states and an incident being investigated (once)."""
    base = f"/ws/{slug}/api/v1"
    owner = headers[WORKSPACES[slug]["owner"]]
    existing = await client.get(f"{base}/changes?limit=1", headers=owner)
    existing.raise_for_status()
    if existing.json()["data"]:
        return
    providers = (await client.get(f"{base}/providers", headers=owner)).json()["data"]
    by_alias = {p["alias"]: p["id"] for p in providers}
    for requester, spec, steps in CHANGES:
        body = {k: v for k, v in spec.items() if k != "provider"}
        if "provider" in spec:
            body["provider_id"] = by_alias[spec["provider"]]
        r = await client.post(f"{base}/changes", json=body, headers=headers[requester])
        _ok(r)
        change = f"{base}/changes/{r.json()['id']}"
        for who, action in steps:
            _ok(await client.post(f"{change}/{action}", headers=headers[who]))
    engineer = headers["engineer@acme.example.com"]
    me = (await client.get("/api/v1/me", headers=engineer)).json()
    r = await client.post(
        f"{base}/incidents",
        json={
            "title": "Elevated 5xx on the public API",
            "description": "Error rate above 2% since the last deploy.",
            "severity": "sev2",
            "provider_id": by_alias["acme-prod"],
            "assignee_id": me["id"],
        },
        headers=owner,
    )
    _ok(r)
    _ok(
        await client.patch(
            f"{base}/incidents/{r.json()['id']}",
            json={"status": "investigating"},
            headers=engineer,
        )
    )


_CHECKS = (
    ("iam_root_mfa_enabled", "Ensure MFA is enabled for the root account", "critical", "FAIL"),
    ("s3_bucket_public_access", "Ensure S3 buckets block public access", "high", "FAIL"),
    ("cloudtrail_multi_region_enabled", "Ensure CloudTrail covers every region", "high", "PASS"),
    ("ec2_ebs_default_encryption", "Ensure EBS default encryption is on", "medium", "FAIL"),
    ("iam_password_policy_length", "Ensure the password policy needs 14+ chars", "low", "PASS"),
    (
        "account_security_contact",
        "Ensure a security contact is registered",
        "informational",
        "MANUAL",
    ),
)


def demo_report(account: str) -> bytes:
    """A small Prowler JSON-OCSF report for an AWS account (one record per demo check)."""
    records = [
        {
            "finding_info": {"uid": f"prowler-aws-{check}-{account}", "title": title},
            "metadata": {"event_code": check},
            "severity": severity.capitalize(),
            "status_code": status,
            "status_detail": f"{title}: {status}",
            "cloud": {"provider": "aws", "region": "eu-west-1", "account": {"uid": account}},
            "resources": [{"uid": f"arn:aws:iam::{account}:root", "type": "AwsAccount"}],
            "time": 1714564800,
        }
        for check, title, severity, status in _CHECKS
    ]
    return orjson.dumps(records)


async def _seed_scan(client: httpx.AsyncClient, slug: str, owner: dict[str, str]) -> None:
    """One scan of the workspace's first AWS provider, once: the worker imports it."""
    providers = await client.get(
        f"/ws/{slug}/api/v1/providers", params={"provider_type": "aws"}, headers=owner
    )
    providers.raise_for_status()
    scans = await client.get(f"/ws/{slug}/api/v1/scans", params={"limit": 1}, headers=owner)
    scans.raise_for_status()
    if not providers.json()["data"] or scans.json()["data"]:
        return
    provider = providers.json()["data"][0]
    r = await client.post(
        f"/ws/{slug}/api/v1/scans",
        data={"provider_id": provider["id"]},
        files={"file": ("demo.ocsf.json", demo_report(provider["uid"]), "application/json")},
        headers=owner,
    )
    if r.status_code != 202:
        raise RuntimeError(f"seeding failed: POST /ws/{slug}/api/v1/scans: {r.text}")


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
                await _seed_scan(client, slug, owner)
                if slug == "acme-prod":
                    await _seed_change_management(client, headers, slug)
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
