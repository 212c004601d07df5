"""Key narrowing over the route matrix: every workspace route, called with an API key, answers
as the key's limits say — its user's permissions intersected with the key's (never those that
manage access), its bound workspace, its permitted endpoints."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.security.api_keys import KEY_NEVER
from app.security.permissions import BUILTIN_ROLES
from tests.authz.test_matrix import build, make_world, workspace_routes  # noqa: F401
from tests.helpers import Api

SUBSET = [
    "provider.read",
    "provider.delete",
    "scan.read",
    "finding.read",
    "task.read",
    "task.cancel",
    "audit.read",  # the engineer does not hold it: the intersection drops it
    "member.read",
    "unlimited_visibility",
]


def _variants(slug: str, other: str) -> dict[str, dict[str, Any]]:
    return {
        "unlimited": {},
        "subset": {"permissions": SUBSET},
        "bound elsewhere": {"workspace": other},
        "endpoints": {
            "permitted_endpoints": [
                {"method": "GET", "path": f"/ws/{slug}/api/v1/providers(/.*)?"},
                {"method": "*", "path": f"/ws/{slug}/api/v1/scans"},
            ]
        },
    }


@pytest.mark.parametrize(
    ("role", "variant"),
    [
        ("owner", "unlimited"),
        ("engineer", "subset"),
        ("owner", "bound elsewhere"),
        ("admin", "endpoints"),
    ],
)
async def test_key_narrowing_over_the_route_matrix(role, variant, app, api: Api, make_world):  # noqa: F811
    world = await make_world(role)
    other = await api.workspace(world.actor)
    limits = _variants(world.slug, other)[variant]
    r = await api.client.post(
        "/api/v1/me/api-keys", json={"name": variant, **limits}, headers=world.actor.headers
    )
    assert r.status_code == 201, r.text
    key = {"X-API-Key": r.json()["secret"]}
    held = BUILTIN_ROLES[role] - KEY_NEVER
    if "permissions" in limits:
        held &= set(limits["permissions"])
    endpoints = [
        (e["method"], re.compile(e["path"])) for e in limits.get("permitted_endpoints", [])
    ]
    failures = []
    checked = 0
    for method, template, permission in workspace_routes(app):
        path, body = await build(method, template, api, world)
        kwargs = body if isinstance(body, dict) and "files" in body else {"json": body}
        r = await api.client.request(method, path, headers=key, **kwargs)
        permitted = not endpoints or any(
            m in ("*", method) and p.fullmatch(path) for m, p in endpoints
        )
        allowed = permission in held and permitted and variant != "bound elsewhere"
        ok = 200 <= r.status_code < 300 if allowed else r.status_code == 403
        if not allowed and ok:
            detail = r.json()["detail"]
            reason = (
                "bound to another workspace"
                if variant == "bound elsewhere"
                else "permitted endpoints"
                if not permitted
                else "API key"
                if permission in BUILTIN_ROLES[role]
                else "does not include"
            )
            ok = reason in detail
        if not ok:
            failures.append(f"{method} {template} ({permission}): {r.status_code} {r.text[:200]}")
        checked += 1
    assert checked >= 50
    assert failures == []
