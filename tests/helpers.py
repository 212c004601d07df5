"""Test helpers that drive the API the way a client does."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

PASSWORD = "correct horse battery staple"


@dataclass
class User:
    email: str
    access_token: str
    refresh_token: str
    id: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def aws_uid() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def user(self, name: str = "user") -> User:
        email = f"{name}-{secrets.token_hex(5)}@example.com"
        r = await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        return await self.login(email, user_id)

    async def login(self, email: str, user_id: str = "") -> User:
        r = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return User(
            email=email,
            id=user_id,
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )

    async def workspace(self, owner: User, slug: str | None = None) -> str:
        slug = slug or f"ws-{secrets.token_hex(4)}"
        r = await self.client.post(
            "/api/v1/workspaces", json={"slug": slug, "name": slug.upper()}, headers=owner.headers
        )
        assert r.status_code == 201, r.text
        return slug

    async def add_member(self, owner: User, slug: str, member: User, role: str) -> None:
        r = await self.client.post(
            f"/ws/{slug}/api/v1/members",
            json={"email": member.email, "role": role},
            headers=owner.headers,
        )
        assert r.status_code == 201, r.text

    async def provider(self, user: User, slug: str, **fields: Any) -> dict[str, Any]:
        body = {"provider_type": "aws", "uid": aws_uid(), **fields}
        r = await self.client.post(f"/ws/{slug}/api/v1/providers", json=body, headers=user.headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def me(self, user: User) -> dict[str, Any]:
        r = await self.client.get("/api/v1/me", headers=user.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def workspace_id(self, user: User, slug: str) -> str:
        r = await self.client.get("/api/v1/workspaces", headers=user.headers)
        assert r.status_code == 200, r.text
        return str(next(w["id"] for w in r.json()["data"] if w["slug"] == slug))

    async def group(self, user: User, slug: str, **fields: Any) -> dict[str, Any]:
        body = {"name": f"group-{secrets.token_hex(4)}", **fields}
        r = await self.client.post(
            f"/ws/{slug}/api/v1/provider-groups", json=body, headers=user.headers
        )
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    async def all(self, user: User, slug: str, resource: str) -> list[dict[str, Any]]:
        """Every row of a workspace list (follows the cursor)."""
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 200}
        while True:
            r = await self.client.get(
                f"/ws/{slug}/api/v1/{resource}", params=params, headers=user.headers
            )
            assert r.status_code == 200, r.text
            page = r.json()
            rows += page["data"]
            if not page["next_cursor"]:
                return rows
            params["cursor"] = page["next_cursor"]


# Problem details and leak checks (SPEC section 10).

PROBLEM_JSON = "application/problem+json"
LEAK_MARKERS = ("Traceback", "sqlalchemy", "asyncpg", "SELECT", "INSERT", "psycopg", 'File "')


def assert_problem(r: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """`r` is an RFC 9457 problem (of `status`, when given) that leaks no internals."""
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM_JSON), (r.status_code, r.headers, r.text)
    body = r.json()
    assert isinstance(body, dict), body
    for key in ("type", "title", "status", "detail"):
        assert key in body, (key, body)
    assert body["status"] == r.status_code, body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    for marker in LEAK_MARKERS:
        assert marker not in r.text, (marker, r.text)
    return body


def without_volatile(body: dict[str, Any]) -> dict[str, Any]:
    """A problem body minus the per-request fields, for comparing two responses."""
    return {k: v for k, v in body.items() if k not in ("request_id", "instance")}


def client_for(app: Any, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client for `app` whose requests come from `ip` (the throttle keys on the address)."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://warden.test")


@asynccontextmanager
async def serve(
    settings: Any, ip: str = "127.0.0.1"
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A second app with its own settings (lifespan run), and a client for it."""
    from app.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        async with client_for(application, ip) as c:
            yield application, c


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route with its effective path and dependant, routers included."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI without router contexts: routes are flat already
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [r for r in iter_route_contexts(app.routes) if getattr(r, "dependant", None)]


# Background jobs and scans.

SAMPLES = {"aws": "example_output_aws.ocsf.json", "azure": "example_output_azure.ocsf.json"}


def ocsf_dir() -> Any:
    import os
    import pathlib

    configured = os.environ.get("WARDEN_OCSF_SAMPLES")
    if configured:
        return pathlib.Path(configured)
    shipped = pathlib.Path(__file__).resolve().parent / "data" / "ocsf"
    if shipped.is_dir():
        return shipped
    for base in pathlib.Path(__file__).resolve().parents:
        candidate = base / "shared" / "data" / "ocsf"
        if candidate.is_dir():
            return candidate
    raise RuntimeError("sample OCSF reports not found (set WARDEN_OCSF_SAMPLES)")


def sample_report(
    provider_type: str, account_uid: str, *, unique_uids: bool = True, region: str = "eu-west-1"
) -> list[dict[str, Any]]:
    """A shipped sample report with its placeholders filled in: the account is `account_uid`,
    and (by default) every record gets its own finding uid."""
    import json

    raw = (ocsf_dir() / SAMPLES[provider_type]).read_text()
    for placeholder in ("<account_uid>", "<subscription_uid>"):
        raw = raw.replace(placeholder, account_uid)
    raw = raw.replace("<region>", region)
    records: list[dict[str, Any]] = json.loads(raw)
    if unique_uids:
        for i, record in enumerate(records):
            record["finding_info"]["uid"] = (
                f"prowler-{provider_type}-{record['metadata']['event_code']}-{account_uid}-{i}"
            )
    return records


def report_bytes(records: Any) -> bytes:
    import json

    return json.dumps(records).encode()


async def upload_scan(
    client: httpx.AsyncClient,
    user: User,
    slug: str,
    provider_id: str,
    content: bytes,
    name: str = "report.ocsf.json",
) -> httpx.Response:
    return await client.post(
        f"/ws/{slug}/api/v1/scans",
        data={"provider_id": provider_id},
        files={"file": (name, content, "application/json")},
        headers=user.headers,
    )


async def run_jobs(settings: Any, **overrides: Any) -> Any:
    """Run a real arq worker in burst mode, in-process, until the queue is empty."""
    from workers.settings import create_worker

    options: dict[str, Any] = {"burst": True, "handle_signals": False, "cron_jobs": []}
    options.update(overrides)
    worker = create_worker(settings, **options)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker


# The registry, read off the live app: which list resource each route serves.


@dataclass(frozen=True)
class ListRoute:
    """A route speaking the query language: its path template, method, kind (list, search or
    distinct) and the `Resource` it serves."""

    path: str
    method: str
    kind: str
    resource: Any


def list_routes(app: FastAPI) -> list[ListRoute]:
    """Every query-language route of the app, found through its `Resource` dependency."""
    from app.query import Resource

    out: list[ListRoute] = []

    def walk(route: Any, dependant: Any) -> None:
        for dep in dependant.dependencies:
            owner = getattr(dep.call, "__self__", None)
            if isinstance(owner, Resource):
                kind = dep.call.__name__.removesuffix("_query")
                for method in sorted(route.methods):
                    out.append(ListRoute(route.path, method, kind, owner))
            walk(route, dep)

    for route in api_routes(app):
        walk(route, route.dependant)
    return out
