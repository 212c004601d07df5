"""Audit completeness: every route of the app is called once, and every successful call has
exactly one record (in the workspace's log, or in the caller's own log for calls outside a
workspace) with the right action and resource. A route added without an entry here fails."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
from sqlalchemy import text

from app.security.audit import AuditedRoute
from app.security.deps import get_credential
from tests.helpers import (
    PASSWORD,
    Api,
    User,
    api_routes,
    aws_uid,
    report_bytes,
    run_jobs,
    sample_report,
)

# Routes anyone may call (no credentials, nothing to attribute); everything else is audited.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/api/v1/permissions"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
# Routes that establish who the caller is: they write the user's security event themselves.
AUTHENTICATING = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/mfa"),
    ("POST", "/api/v1/auth/oidc"),
}
# Routes that need an outside party; the tests named here check their records.
CALLED_ELSEWHERE = {
    ("POST", "/api/v1/auth/oidc"): "tests/identity/test_oidc.py (a real OIDC provider)",
}


@dataclass
class Call:
    method: str
    route: str
    request_id: str
    table: str  # audit_record or user_event
    action: str
    resource_type: str | None
    resource_id: str | None
    user: User
    status: int


class Caller:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.calls: list[Call] = []

    async def __call__(
        self,
        user: User | None,
        method: str,
        route: str,
        values: dict[str, str],
        table: str,
        action: str,
        resource_type: str | None,
        resource_id: Any = None,
        **kw: Any,
    ) -> httpx.Response:
        request_id = uuid.uuid4().hex
        headers = {"x-request-id": request_id, "user-agent": "completeness/1.0"}
        if user is not None:
            headers.update(user.headers)
        r = await self.client.request(method, route.format(**values), headers=headers, **kw)
        assert r.status_code < 300, (method, route, r.status_code, r.text)
        rid = resource_id(r) if callable(resource_id) else resource_id
        self.calls.append(
            Call(
                method,
                route,
                request_id,
                table,
                action,
                resource_type,
                str(rid) if rid else None,
                user or User("", "", ""),
                r.status_code,
            )
        )
        return r


def _id(r: httpx.Response) -> str:
    return r.json()["id"]


async def _workspace_calls(call: Caller, api: Api, owner: User, slug: str, settings: Any) -> None:
    ws = "/ws/{slug}/api/v1"
    v = {"slug": slug}
    A = "audit_record"  # noqa: N806
    r = await call(
        owner,
        "POST",
        ws + "/providers",
        v,
        A,
        "create",
        "provider",
        _id,
        json={"provider_type": "aws", "uid": aws_uid(), "alias": "prod"},
    )
    v["provider_id"] = pid = r.json()["id"]
    puid = r.json()["uid"]
    await call(owner, "GET", ws + "/providers", v, A, "list", "provider")
    await call(
        owner,
        "POST",
        ws + "/providers/search/{field}",
        {**v, "field": "alias"},
        A,
        "search",
        "provider",
        json=["prod"],
    )
    await call(
        owner,
        "GET",
        ws + "/providers/distinct/{field}",
        {**v, "field": "alias"},
        A,
        "distinct",
        "provider",
    )
    await call(owner, "GET", ws + "/providers/{provider_id}", v, A, "get", "provider", pid)
    await call(
        owner,
        "PATCH",
        ws + "/providers/{provider_id}",
        v,
        A,
        "update",
        "provider",
        pid,
        json={"alias": "staging"},
    )

    r = await call(
        owner,
        "POST",
        ws + "/provider-groups",
        v,
        A,
        "create",
        "provider_group",
        _id,
        json={"name": "core", "provider_ids": [pid]},
    )
    v["group_id"] = gid = r.json()["id"]
    await call(owner, "GET", ws + "/provider-groups", v, A, "list", "provider_group")
    await call(
        owner,
        "POST",
        ws + "/provider-groups/search/{field}",
        {**v, "field": "name"},
        A,
        "search",
        "provider_group",
        json=["core"],
    )
    await call(
        owner,
        "GET",
        ws + "/provider-groups/distinct/{field}",
        {**v, "field": "name"},
        A,
        "distinct",
        "provider_group",
    )
    await call(owner, "GET", ws + "/provider-groups/{group_id}", v, A, "get", "provider_group", gid)
    await call(
        owner,
        "PATCH",
        ws + "/provider-groups/{group_id}",
        v,
        A,
        "update",
        "provider_group",
        gid,
        json={"name": "core-2"},
    )

    member = await api.user("member")
    r = await call(
        owner,
        "POST",
        ws + "/members",
        v,
        A,
        "create",
        "member",
        lambda r: r.json()["user_id"],
        json={"email": member.email, "role": "viewer"},
    )
    v["user_id"] = uid = r.json()["user_id"]
    await call(owner, "GET", ws + "/members", v, A, "list", "member")
    await call(
        owner,
        "POST",
        ws + "/members/search/{field}",
        {**v, "field": "role"},
        A,
        "search",
        "member",
        json=["viewer"],
    )
    await call(
        owner,
        "GET",
        ws + "/members/distinct/{field}",
        {**v, "field": "role"},
        A,
        "distinct",
        "member",
    )
    await call(owner, "GET", ws + "/members/{user_id}", v, A, "get", "member", uid)
    await call(
        owner,
        "PATCH",
        ws + "/members/{user_id}",
        v,
        A,
        "update",
        "member",
        uid,
        json={"role": "engineer"},
    )

    r = await call(
        owner,
        "POST",
        ws + "/roles",
        v,
        A,
        "create",
        "role",
        _id,
        json={"name": "Auditor", "inherits_from": "viewer", "grants": ["audit.read"]},
    )
    v["role_id"] = rid = r.json()["id"]
    await call(owner, "GET", ws + "/roles", v, A, "list", "role")
    await call(
        owner,
        "POST",
        ws + "/roles/search/{field}",
        {**v, "field": "name"},
        A,
        "search",
        "role",
        json=["Auditor"],
    )
    await call(
        owner, "GET", ws + "/roles/distinct/{field}", {**v, "field": "name"}, A, "distinct", "role"
    )
    await call(owner, "GET", ws + "/roles/{role_id}", v, A, "get", "role", rid)
    await call(
        owner,
        "PATCH",
        ws + "/roles/{role_id}",
        v,
        A,
        "update",
        "role",
        rid,
        json={"revokes": ["provider.read"]},
    )

    ws_id = await api.workspace_id(owner, slug)
    await call(owner, "GET", ws + "/settings", v, A, "get", "workspace", ws_id)
    await call(
        owner,
        "PATCH",
        ws + "/settings",
        v,
        A,
        "update",
        "workspace",
        ws_id,
        json={"audit_retention_days": 90},
    )

    await call(owner, "GET", ws + "/audit", v, A, "list", "audit")
    await call(
        owner,
        "POST",
        ws + "/audit/search/{field}",
        {**v, "field": "action"},
        A,
        "search",
        "audit",
        json=["create"],
    )
    await call(
        owner,
        "GET",
        ws + "/audit/distinct/{field}",
        {**v, "field": "action"},
        A,
        "distinct",
        "audit",
    )
    await call(owner, "GET", ws + "/audit/verify", v, A, "verify", "audit")
    await call(
        owner,
        "GET",
        ws + "/audit/{resource_id}",
        {**v, "resource_id": pid},
        A,
        "list",
        "audit",
        pid,
    )
    await call(
        owner,
        "GET",
        ws + "/history/{resource_type}/{resource_id}",
        {**v, "resource_type": "provider", "resource_id": pid},
        A,
        "history",
        "provider",
        pid,
    )

    # Scans, findings and tasks: an import answered 202, run by a real worker.
    r = await call(
        owner,
        "POST",
        ws + "/scans",
        v,
        A,
        "create",
        "scan",
        lambda r: r.json()["resource_id"],
        data={"provider_id": pid},
        files={"file": ("r.json", report_bytes(sample_report("aws", puid)), "application/json")},
    )
    v["scan_id"], v["task_id"] = r.json()["resource_id"], r.json()["id"]
    await run_jobs(settings)
    await call(owner, "GET", ws + "/scans", v, A, "list", "scan")
    await call(
        owner,
        "POST",
        ws + "/scans/search/{field}",
        {**v, "field": "state"},
        A,
        "search",
        "scan",
        json=["completed"],
    )
    await call(
        owner, "GET", ws + "/scans/distinct/{field}", {**v, "field": "state"}, A, "distinct", "scan"
    )
    await call(owner, "GET", ws + "/scans/{scan_id}", v, A, "get", "scan", v["scan_id"])
    r = await call(owner, "GET", ws + "/findings", v, A, "list", "finding")
    v["finding_id"] = fid = r.json()["data"][0]["id"]
    await call(
        owner,
        "POST",
        ws + "/findings/search/{field}",
        {**v, "field": "severity"},
        A,
        "search",
        "finding",
        json=["high"],
    )
    await call(
        owner,
        "GET",
        ws + "/findings/distinct/{field}",
        {**v, "field": "severity"},
        A,
        "distinct",
        "finding",
    )
    await call(owner, "GET", ws + "/findings/{finding_id}", v, A, "get", "finding", fid)
    await call(owner, "GET", ws + "/tasks", v, A, "list", "task")
    await call(
        owner,
        "POST",
        ws + "/tasks/search/{field}",
        {**v, "field": "state"},
        A,
        "search",
        "task",
        json=["succeeded"],
    )
    await call(
        owner, "GET", ws + "/tasks/distinct/{field}", {**v, "field": "state"}, A, "distinct", "task"
    )
    await call(owner, "GET", ws + "/tasks/{task_id}", v, A, "get", "task", v["task_id"])
    pending = await api.client.post(
        ws.format(**v) + "/scans",
        data={"provider_id": pid},
        headers=owner.headers,
        files={"file": ("r.json", report_bytes(sample_report("aws", puid)), "application/json")},
    )
    v["task_id"] = pending.json()["id"]
    await call(owner, "POST", ws + "/tasks/{task_id}/cancel", v, A, "cancel", "task", v["task_id"])

    await _identity_calls(call, owner, v)
    await call(owner, "DELETE", ws + "/members/{user_id}", v, A, "delete", "member", uid)
    await call(owner, "DELETE", ws + "/roles/{role_id}", v, A, "delete", "role", rid)
    await call(
        owner, "DELETE", ws + "/provider-groups/{group_id}", v, A, "delete", "provider_group", gid
    )
    await call(owner, "DELETE", ws + "/providers/{provider_id}", v, A, "delete", "provider", pid)


async def _identity_calls(call: Caller, owner: User, v: dict[str, str]) -> None:
    A = "audit_record"  # noqa: N806
    for path, kind, body, field, value, revoke in (
        ("/service-keys", "service_key", {"name": "svc"}, "name", "svc", "revoke"),
        ("/idp-groups", "idp_group", {"group": "ops", "role": "viewer"}, "group", "ops", "delete"),
    ):
        base = "/ws/{slug}/api/v1" + path
        r = await call(owner, "POST", base, v, A, "create", kind, _id, json=body)
        item = {**v, "item": r.json()["id"]}
        await call(owner, "GET", base, v, A, "list", kind)
        await call(
            owner,
            "POST",
            base + "/search/{field}",
            {**v, "field": field},
            A,
            "search",
            kind,
            json=[value],
        )
        await call(
            owner, "GET", base + "/distinct/{field}", {**v, "field": field}, A, "distinct", kind
        )
        param = "{key_id}" if kind == "service_key" else "{mapping_id}"
        route = base + "/" + param
        values = {**v, param.strip("{}"): item["item"]}
        await call(owner, "GET", route, values, A, "get", kind, item["item"])
        await call(owner, "DELETE", route, values, A, revoke, kind, item["item"])


async def _member(api: Api, owner: User, slug: str, role: str) -> User:
    member = await api.user(role)
    await api.add_member(owner, slug, member, role)
    member.id = (await api.me(member))["id"]
    return member


async def _list_routes(
    call: Caller, owner: User, ws: str, v: dict[str, str], kind: str, field: str, value: str
) -> None:
    resource = kind.removesuffix("s")
    A = "audit_record"  # noqa: N806
    await call(owner, "GET", f"{ws}/{kind}", v, A, "list", resource)
    await call(
        owner,
        "POST",
        f"{ws}/{kind}/search/{{field}}",
        {**v, "field": field},
        A,
        "search",
        resource,
        json=[value],
    )
    await call(
        owner,
        "GET",
        f"{ws}/{kind}/distinct/{{field}}",
        {**v, "field": field},
        A,
        "distinct",
        resource,
    )


async def _change_management_calls(
    call: Caller, api: Api, owner: User, slug: str, settings: Any
) -> None:
    ws = "/ws/{slug}/api/v1"
    v = {"slug": slug}
    A = "audit_record"  # noqa: N806
    engineer = await _member(api, owner, slug, "engineer")
    approver = await _member(api, owner, slug, "approver")
    body = {"title": "Patch", "description": "", "risk": "low"}
    r = await call(owner, "POST", ws + "/changes", v, A, "create", "change", _id, json=body)
    v["change_id"] = cid = r.json()["id"]
    await _list_routes(call, owner, ws, v, "changes", "state", "draft")
    await call(owner, "GET", ws + "/changes/{change_id}", v, A, "get", "change", cid)
    await call(
        owner,
        "PATCH",
        ws + "/changes/{change_id}",
        v,
        A,
        "update",
        "change",
        cid,
        json={"risk": "high"},
    )
    await call(owner, "POST", ws + "/changes/{change_id}/cancel", v, A, "cancel", "change", cid)
    for action, by, kw in (
        ("submit", engineer, {}),
        ("approve", approver, {"json": {"comment": "ok"}}),
        ("implement", engineer, {}),
    ):
        if action == "submit":
            v["change_id"] = cid = (
                await api.client.post(
                    ws.format(**v) + "/changes", json=body, headers=engineer.headers
                )
            ).json()["id"]
        await call(
            by, "POST", ws + f"/changes/{{change_id}}/{action}", v, A, action, "change", cid, **kw
        )
    v["change_id"] = cid = (
        await api.client.post(ws.format(**v) + "/changes", json=body, headers=engineer.headers)
    ).json()["id"]
    await api.client.post(ws.format(**v) + f"/changes/{cid}/submit", headers=engineer.headers)
    await call(
        approver,
        "POST",
        ws + "/changes/{change_id}/reject",
        v,
        A,
        "reject",
        "change",
        cid,
        json={"reason": "no"},
    )
    cid = (
        await api.client.post(ws.format(**v) + "/changes", json=body, headers=engineer.headers)
    ).json()["id"]
    await api.client.post(ws.format(**v) + f"/changes/{cid}/submit", headers=engineer.headers)
    await call(
        owner,
        "POST",
        ws + "/changes/bulk-approve",
        v,
        A,
        "bulk_approve",
        "change",
        json={"ids": [cid]},
    )

    r = await call(
        owner,
        "POST",
        ws + "/incidents",
        v,
        A,
        "create",
        "incident",
        _id,
        json={"title": "Down", "severity": "sev1"},
    )
    v["incident_id"] = iid = r.json()["id"]
    await _list_routes(call, owner, ws, v, "incidents", "status", "open")
    await call(owner, "GET", ws + "/incidents/{incident_id}", v, A, "get", "incident", iid)
    await call(
        owner,
        "PATCH",
        ws + "/incidents/{incident_id}",
        v,
        A,
        "update",
        "incident",
        iid,
        json={"assignee_id": engineer.id},
    )

    invitee = await api.user("invitee")
    r = await call(
        owner,
        "POST",
        ws + "/invitations",
        v,
        A,
        "create",
        "invitation",
        _id,
        json={"email": invitee.email, "role": "viewer"},
    )
    token = r.json()["token"]
    v["invitation_id"] = vid = r.json()["id"]
    await _list_routes(call, owner, ws, v, "invitations", "state", "pending")
    await call(owner, "GET", ws + "/invitations/{invitation_id}", v, A, "get", "invitation", vid)
    invitee.id = (await api.me(invitee))["id"]
    E = "user_event"  # noqa: N806
    await call(
        invitee,
        "POST",
        "/api/v1/invitations/{token}/accept",
        {"token": token},
        E,
        "accept_invitation",
        "invitation",
    )
    r = await call(
        owner,
        "POST",
        ws + "/invitations",
        v,
        A,
        "create",
        "invitation",
        _id,
        json={"email": "someone@example.com", "role": "viewer"},
    )
    v["invitation_id"] = vid = r.json()["id"]
    await call(
        owner, "DELETE", ws + "/invitations/{invitation_id}", v, A, "revoke", "invitation", vid
    )

    await run_jobs(settings)
    r = await call(owner, "GET", "/api/v1/me/notifications", {}, E, "list_my_notifications", "me")
    nid = r.json()["data"][0]["id"]
    await call(
        owner,
        "POST",
        "/api/v1/me/notifications/{notification_id}/read",
        {"notification_id": nid},
        E,
        "read_notification",
        "me",
        nid,
    )
    await call(
        owner, "POST", "/api/v1/me/notifications/read-all", {}, E, "read_all_notifications", "me"
    )


async def _user_calls(call: Caller, api: Api, admin_engine) -> User:
    E = "user_event"  # noqa: N806
    email = f"complete-{uuid.uuid4().hex[:8]}@example.com"
    r = await call(
        None,
        "POST",
        "/api/v1/auth/register",
        {},
        E,
        "register",
        "auth",
        json={"email": email, "password": PASSWORD, "name": "C"},
    )
    user_id = r.json()["id"]
    r = await call(
        None,
        "POST",
        "/api/v1/auth/login",
        {},
        E,
        "login",
        "auth",
        json={"email": email, "password": PASSWORD},
    )
    user = User(
        email,
        r.json()["access_token"],
        r.json()["refresh_token"],
        user_id,
        {"Authorization": f"Bearer {r.json()['access_token']}"},
    )
    await call(
        None,
        "POST",
        "/api/v1/auth/token",
        {},
        E,
        "login",
        "auth",
        data={"username": email, "password": PASSWORD},
    )
    r = await call(
        None,
        "POST",
        "/api/v1/auth/refresh",
        {},
        E,
        "refresh",
        "auth",
        json={"refresh_token": user.refresh_token},
    )
    user.access_token, user.refresh_token = r.json()["access_token"], r.json()["refresh_token"]
    user.headers = {"Authorization": f"Bearer {user.access_token}"}
    for c in call.calls:  # the anonymous calls are filed under the user they authenticated
        c.user = user
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE app_user SET is_platform_admin = true WHERE id = :u"), {"u": user_id}
        )

    slug = f"ws-{uuid.uuid4().hex[:8]}"
    await call(
        user,
        "POST",
        "/api/v1/workspaces",
        {},
        E,
        "create_workspace",
        "workspace",
        _id,
        json={"slug": slug, "name": "Complete"},
    )
    await call(user, "GET", "/api/v1/workspaces", {}, E, "list_workspaces", "workspace")
    await call(user, "GET", "/api/v1/me", {}, E, "me", "me", user_id)
    await call(
        user,
        "POST",
        "/api/v1/me/has-permission",
        {},
        E,
        "has_permission",
        "me",
        json={"workspace": slug, "permission": "audit.read"},
    )
    await call(user, "GET", "/api/v1/me/events", {}, E, "list_my_events", "me")
    await call(user, "GET", "/api/v1/me/denials", {}, E, "list_my_denials", "me")
    await call(user, "GET", "/api/v1/platform/workspaces", {}, E, "platform_workspaces", "platform")
    await call(user, "GET", "/api/v1/platform/denials", {}, E, "platform_denials", "platform")
    await _key_and_mfa_calls(call, api, user)
    return user


async def _key_and_mfa_calls(call: Caller, api: Api, user: User) -> None:
    E = "user_event"  # noqa: N806
    k = "/api/v1/me/api-keys"
    r = await call(user, "POST", k, {}, E, "create_api_key", "me", _id, json={"name": "c"})
    key_id = r.json()["id"]
    await call(user, "GET", k, {}, E, "list_api_keys", "me")
    await call(user, "DELETE", k + "/{key_id}", {"key_id": key_id}, E, "revoke_api_key", "me")
    m = "/api/v1/me/mfa"
    r = await call(user, "POST", m + "/totp", {}, E, "enrol_totp", "me")
    totp = pyotp.TOTP(r.json()["secret"])
    await call(user, "GET", m + "/totp/qr.png", {}, E, "get_totp_qr", "me")
    now = time.time()
    r = await call(
        user, "POST", m + "/totp/confirm", {}, E, "confirm_totp", "me", json={"code": totp.at(now)}
    )
    recovery = r.json()["recovery_codes"]
    await call(user, "GET", m, {}, E, "get_mfa", "me")
    challenge = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    body = {"mfa_token": challenge.json()["mfa_token"], "code": totp.at(now + 30)}
    await call(user, "POST", "/api/v1/auth/mfa", {}, E, "login", "auth", json=body)
    await call(user, "DELETE", m + "/totp", {}, E, "disable_totp", "me", json={"code": recovery[0]})


async def test_every_successful_call_is_recorded_once(app, client, admin_engine, settings):
    api = Api(client)
    call = Caller(client)
    user = await _user_calls(call, api, admin_engine)
    slug = (await client.get("/api/v1/workspaces", headers=user.headers)).json()["data"][0]
    await _workspace_calls(call, api, user, slug["slug"], settings)
    await _change_management_calls(call, api, user, slug["slug"], settings)
    doomed = await api.workspace(user)
    await call(
        user,
        "DELETE",
        "/api/v1/workspaces/{slug}",
        {"slug": doomed},
        "audit_record",
        "delete",
        "workspace",
        await api.workspace_id(user, doomed),
    )
    await call(
        user,
        "POST",
        "/api/v1/auth/password",
        {},
        "user_event",
        "change_password",
        "auth",
        json={"current_password": PASSWORD, "new_password": PASSWORD + "!"},
    )
    relogin = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD + "!"}
    )
    user.headers = {"Authorization": f"Bearer {relogin.json()['access_token']}"}
    await call(user, "POST", "/api/v1/auth/logout", {}, "user_event", "logout", "auth")

    called = {(c.method, c.route) for c in call.calls}
    assert route_problems(app, called) == []

    async with admin_engine.connect() as conn:
        for c in call.calls:
            found = {}
            for table in ("audit_record", "user_event", "audit_denial"):
                found[table] = (
                    (
                        await conn.execute(
                            text(f"SELECT * FROM {table} WHERE request_id = :r"),
                            {"r": c.request_id},
                        )
                    )
                    .mappings()
                    .all()
                )
            where = (c.method, c.route)
            # A call that changed several resources adds one record per resource (its history).
            found[c.table] = [r for r in found[c.table] if r["action"] == c.action]
            assert len(found[c.table]) == 1, (where, found)
            others = [t for t in found if t != c.table and found[t]]
            assert not others, (where, others)
            rec = found[c.table][0]
            assert (rec["action"], rec["resource_type"]) == (c.action, c.resource_type), where
            assert (str(rec["resource_id"]) if rec["resource_id"] else None) == c.resource_id, (
                where,
                rec["resource_id"],
                c.resource_id,
            )
            assert str(rec["user_id"]) == c.user.id, where
            assert rec["method"] == c.method and rec["status"] == c.status, where
            assert rec["path"] == c.route.format(**rec["path_params"]) or c.table == "user_event"
            assert rec["user_agent"] == "completeness/1.0" and rec["source_ip"], where
            assert PASSWORD not in str(rec["body"]) and PASSWORD not in str(rec.get("state"))


def route_problems(app, called: set[tuple[str, str]]) -> list[str]:
    """Routes this test did not call, and routes that could escape the audit hook."""
    problems = []
    for route in api_routes(app):
        for method in sorted(route.methods - {"HEAD"}):
            key = (method, route.path)
            if key in PUBLIC:
                if _depends_on(route.dependant, get_credential):
                    problems.append(f"{key} is listed as public but takes credentials")
                continue
            if key not in called and key not in CALLED_ELSEWHERE:
                problems.append(f"{key} has no audit expectation in this test")
            if not isinstance(getattr(route, "original_route", route), AuditedRoute):
                problems.append(f"{key} does not use AuditedRoute")
            if key not in AUTHENTICATING and not _depends_on(route.dependant, get_credential):
                problems.append(f"{key} takes no credentials, so nobody is recorded")
    return problems


def test_a_new_route_fails_the_completeness_check():
    from fastapi import APIRouter, FastAPI

    rogue = FastAPI()
    router = APIRouter()

    @router.get("/ws/{slug}/api/v1/rogue")
    async def list_rogue(slug: str) -> dict:
        return {}

    rogue.include_router(router)
    problems = route_problems(rogue, set())
    assert any("no audit expectation" in p for p in problems)
    assert any("does not use AuditedRoute" in p for p in problems)
    assert any("takes no credentials" in p for p in problems)


def _depends_on(dependant, target) -> bool:
    return any(d.call is target or _depends_on(d, target) for d in dependant.dependencies)
