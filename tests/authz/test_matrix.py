"""Generated matrix: every workspace route × every built-in role (and an outsider) answers as the
permission registry says — 2xx with the permission, 403 without, 404 for outsiders."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from app.security.permissions import BUILTIN_ROLES
from app.security.route_index import route_permissions
from tests.helpers import Api, User, aws_uid, report_bytes, run_jobs, sample_report

ROLES = list(BUILTIN_ROLES)


@dataclass
class World:
    slug: str
    owner: User
    actor: User
    spare: User
    settings: Any = None
    finding_id: str = ""
    admin_engine: Any = None
    requester: User | None = None


Builder = Callable[[Api, World], Awaitable[tuple[str, Any]]]


async def _provider(api: Api, w: World) -> str:
    return str((await api.provider(w.owner, w.slug))["id"])


async def _group(api: Api, w: World) -> str:
    return str((await api.group(w.owner, w.slug))["id"])


async def _role(api: Api, w: World) -> str:
    r = await api.client.post(
        f"/ws/{w.slug}/api/v1/roles",
        json={"name": f"r-{secrets.token_hex(3)}", "inherits_from": "viewer"},
        headers=w.owner.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _service_key(api: Api, w: World) -> str:
    r = await api.client.post(
        f"/ws/{w.slug}/api/v1/service-keys", json={"name": "svc"}, headers=w.owner.headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _idp_group(api: Api, w: World) -> str:
    r = await api.client.post(
        f"/ws/{w.slug}/api/v1/idp-groups",
        json={"group": f"g-{secrets.token_hex(3)}", "role": "viewer"},
        headers=w.owner.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _member(api: Api, w: World) -> str:
    extra = await api.user("extra")
    await api.add_member(w.owner, w.slug, extra, "viewer")
    return str((await api.me(extra))["id"])


async def _upload(api: Api, w: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """An import request for a fresh provider of the world; returns (request kwargs, provider)."""
    provider = await api.provider(w.owner, w.slug)
    report = report_bytes(sample_report("aws", provider["uid"]))
    return {
        "data": {"provider_id": provider["id"]},
        "files": {"file": ("r.json", report, "application/json")},
    }, provider


async def _scan_and_task(api: Api, w: World) -> tuple[str, str]:
    kwargs, _ = await _upload(api, w)
    r = await api.client.post(f"/ws/{w.slug}/api/v1/scans", headers=w.owner.headers, **kwargs)
    assert r.status_code == 202, r.text
    scans = await api.all(w.owner, w.slug, "scans")
    return str(scans[-1]["id"]), str(r.json()["id"])


async def _requester(api: Api, w: World) -> User:
    """A member who requests changes for others to decide on (never the actor)."""
    if w.requester is None:
        w.requester = await api.user("requester")
        await api.add_member(w.owner, w.slug, w.requester, "engineer")
    return w.requester


async def _change(api: Api, w: World, by: User, *, submit: bool = False) -> str:
    r = await api.client.post(
        f"/ws/{w.slug}/api/v1/changes",
        json={"title": "c", "description": "", "risk": "low"},
        headers=by.headers,
    )
    if r.status_code in (403, 404):  # the actor may not create changes: the route refuses anyway
        return await _change(api, w, w.owner, submit=submit)
    assert r.status_code == 201, r.text
    change_id = str(r.json()["id"])
    if submit:
        s = await api.client.post(
            f"/ws/{w.slug}/api/v1/changes/{change_id}/submit", headers=by.headers
        )
        assert s.status_code == 200, s.text
    return change_id


async def _actors_change(api: Api, w: World, state: str) -> str:
    """A change in `state` requested by the actor, written directly (the actor's role may not
    be one that creates changes; implementing and cancelling only need to be the requester)."""
    ws = await api.workspace_id(w.owner, w.slug)
    actor = (await api.me(w.actor))["id"]
    change_id = str(uuid.uuid4())
    async with w.admin_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO change_request (workspace_id, id, title, description, risk, "
                "required_approvals, approval_count, state, requested_by) "
                "VALUES (:ws, :id, 'mine', '', 'low', 1, :n, :state, :actor)"
            ),
            {
                "ws": ws,
                "id": change_id,
                "n": int(state == "approved"),
                "state": state,
                "actor": actor,
            },
        )
    return change_id


async def _incident(api: Api, w: World) -> str:
    r = await api.client.post(
        f"/ws/{w.slug}/api/v1/incidents",
        json={"title": "i", "severity": "sev3"},
        headers=w.owner.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _invitation(api: Api, w: World) -> str:
    r = await api.client.post(
        f"/ws/{w.slug}/api/v1/invitations",
        json={"email": f"guest-{secrets.token_hex(4)}@example.com", "role": "viewer"},
        headers=w.owner.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# One request per (method, route). A route without an entry fails the test: add one.
async def build(method: str, template: str, api: Api, w: World) -> tuple[str, Any]:
    base = f"/ws/{w.slug}/api/v1"
    rest = template.removeprefix("/ws/{slug}/api/v1")
    # The query language's routes on every list: search by a field, distinct values of it.
    lists = {
        "providers": ("id", str(uuid.uuid4())),
        "provider-groups": ("name", "x"),
        "members": ("role", "viewer"),
        "roles": ("name", "x"),
        "scans": ("state", "completed"),
        "findings": ("severity", "high"),
        "tasks": ("state", "succeeded"),
        "audit": ("action", "create"),
        "service-keys": ("name", "x"),
        "idp-groups": ("group", "x"),
        "changes": ("state", "draft"),
        "incidents": ("status", "open"),
        "invitations": ("state", "pending"),
    }
    collection = rest.split("/")[1]
    if rest.endswith("/search/{field}") and collection in lists:
        field, value = lists[collection]
        return f"{base}/{collection}/search/{field}", [value]
    if rest.endswith("/distinct/{field}") and collection in lists:
        return f"{base}/{collection}/distinct/{lists[collection][0]}", None
    match method, rest:
        case "GET", "/settings" | "/audit" | "/audit/verify":
            return f"{base}{rest}", None
        case "PATCH", "/settings":
            return f"{base}/settings", {"audit_retention_days": 30}
        case "GET", "/audit/{resource_id}":
            return f"{base}/audit/{await _provider(api, w)}", None
        case "GET", "/history/{resource_type}/{resource_id}":
            return f"{base}/history/provider/{await _provider(api, w)}", None
        case "GET", "/providers" | "/provider-groups" | "/members" | "/roles":
            return f"{base}{rest}", None
        case "GET", "/service-keys" | "/idp-groups":
            return f"{base}{rest}", None
        case "POST", "/service-keys":
            return f"{base}/service-keys", {"name": "svc"}
        case "GET" | "DELETE", "/service-keys/{key_id}":
            return f"{base}/service-keys/{await _service_key(api, w)}", None
        case "POST", "/idp-groups":
            return f"{base}/idp-groups", {"group": f"g-{secrets.token_hex(3)}", "role": "viewer"}
        case "GET" | "DELETE", "/idp-groups/{mapping_id}":
            return f"{base}/idp-groups/{await _idp_group(api, w)}", None
        case "GET", "/changes" | "/incidents" | "/invitations":
            return f"{base}{rest}", None
        case "POST", "/changes":
            return f"{base}/changes", {"title": "t", "description": "", "risk": "low"}
        case "GET", "/changes/{change_id}":
            return f"{base}/changes/{await _change(api, w, w.owner)}", None
        case "PATCH", "/changes/{change_id}":
            return f"{base}/changes/{await _change(api, w, w.actor)}", {"title": "edited"}
        case "POST", "/changes/{change_id}/submit":
            return f"{base}/changes/{await _change(api, w, w.actor)}/submit", None
        case "POST", "/changes/{change_id}/approve" | "/changes/{change_id}/reject":
            change_id = await _change(api, w, await _requester(api, w), submit=True)
            action = rest.rsplit("/", 1)[1]
            return f"{base}/changes/{change_id}/{action}", {
                "reason": "no"
            } if action == "reject" else None
        case "POST", "/changes/bulk-approve":
            change_id = await _change(api, w, await _requester(api, w), submit=True)
            return f"{base}/changes/bulk-approve", {"ids": [change_id]}
        case "POST", "/changes/{change_id}/implement":
            return f"{base}/changes/{await _actors_change(api, w, 'approved')}/implement", None
        case "POST", "/changes/{change_id}/cancel":
            return f"{base}/changes/{await _actors_change(api, w, 'draft')}/cancel", None
        case "POST", "/incidents":
            return f"{base}/incidents", {"title": "t", "severity": "sev2"}
        case "GET" | "PATCH", "/incidents/{incident_id}":
            body = {"severity": "sev1"} if method == "PATCH" else None
            return f"{base}/incidents/{await _incident(api, w)}", body
        case "POST", "/invitations":
            return f"{base}/invitations", {
                "email": f"i-{secrets.token_hex(4)}@example.com",
                "role": "viewer",
            }
        case "GET" | "DELETE", "/invitations/{invitation_id}":
            return f"{base}/invitations/{await _invitation(api, w)}", None
        case "GET", "/scans" | "/findings" | "/tasks":
            return f"{base}{rest}", None
        case "POST", "/scans":
            kwargs, _ = await _upload(api, w)
            return f"{base}/scans", kwargs
        case "GET", "/scans/{scan_id}":
            return f"{base}/scans/{(await _scan_and_task(api, w))[0]}", None
        case "GET", "/tasks/{task_id}":
            return f"{base}/tasks/{(await _scan_and_task(api, w))[1]}", None
        case "POST", "/tasks/{task_id}/cancel":
            return f"{base}/tasks/{(await _scan_and_task(api, w))[1]}/cancel", None
        case "GET", "/findings/{finding_id}":
            return f"{base}/findings/{w.finding_id}", None
        case "POST", "/providers":
            return f"{base}/providers", {"provider_type": "aws", "uid": aws_uid()}
        case "GET" | "PATCH" | "DELETE", "/providers/{provider_id}":
            body = {"alias": "renamed"} if method == "PATCH" else None
            return f"{base}/providers/{await _provider(api, w)}", body
        case "POST", "/provider-groups":
            return f"{base}/provider-groups", {"name": f"g-{secrets.token_hex(3)}"}
        case "GET" | "PATCH" | "DELETE", "/provider-groups/{group_id}":
            body = {"name": f"g-{secrets.token_hex(3)}"} if method == "PATCH" else None
            return f"{base}/provider-groups/{await _group(api, w)}", body
        case "POST", "/members":
            extra = await api.user("new")
            return f"{base}/members", {"email": extra.email, "role": "viewer"}
        case "GET" | "PATCH" | "DELETE", "/members/{user_id}":
            body = {"attributes": {"region": "eu"}} if method == "PATCH" else None
            return f"{base}/members/{await _member(api, w)}", body
        case "POST", "/roles":
            return f"{base}/roles", {"name": f"r-{secrets.token_hex(3)}", "inherits_from": "viewer"}
        case "GET" | "PATCH" | "DELETE", "/roles/{role_id}":
            body = {"grants": ["audit.read"]} if method == "PATCH" else None
            return f"{base}/roles/{await _role(api, w)}", body
    raise AssertionError(
        f"no matrix request for {method} {template}: add one to tests/authz/test_matrix.py"
    )


@pytest.fixture
async def make_world(api: Api, admin_engine, settings):
    async def factory(role: str | None) -> World:
        owner, actor, spare = (
            await api.user("owner"),
            await api.user(f"actor-{role}"),
            await api.user("spare"),
        )
        slug = await api.workspace(owner)
        world = World(slug, owner, actor, spare, admin_engine=admin_engine)
        # One imported finding per world, for the finding-by-id route.
        await _scan_and_task(api, world)
        await run_jobs(settings)
        world.finding_id = str((await api.all(owner, slug, "findings"))[0]["id"])
        if role == "owner":
            actor = owner
        elif role == "platform_admin":
            # Not grantable through the API (an escalation); the installation sets it directly.
            await api.add_member(owner, slug, actor, "viewer")
            async with admin_engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE membership SET role = 'platform_admin' WHERE user_id = "
                        "(SELECT id FROM app_user WHERE email = :e)"
                    ),
                    {"e": actor.email},
                )
        elif role is not None:
            await api.add_member(owner, slug, actor, role)
        world.actor = actor
        return world

    return factory


def workspace_routes(app) -> list[tuple[str, str, str | None]]:
    return [
        (r.method, r.path, r.permission)
        for r in route_permissions(app)
        if r.path.startswith("/ws/{slug}/api/v1/")
    ]


@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "outsider"])
async def test_route_matrix(role, app, api, make_world):
    routes = workspace_routes(app)
    assert len(routes) >= 45
    world = await make_world(role)
    failures = []
    for method, template, permission in routes:
        assert permission, f"{method} {template} declares no permission"
        path, body = await build(method, template, api, world)
        kwargs = body if isinstance(body, dict) and "files" in body else {"json": body}
        r = await api.client.request(method, path, headers=world.actor.headers, **kwargs)
        if role is None:
            expected = "404"
            ok = r.status_code == 404
        elif permission in BUILTIN_ROLES[role]:
            expected = "2xx"
            ok = 200 <= r.status_code < 300
        else:
            expected = "403"
            ok = r.status_code == 403
        if not ok:
            failures.append(
                f"{role} {method} {template} ({permission}): {r.status_code}, want {expected}: {r.text[:200]}"
            )
    assert failures == []
