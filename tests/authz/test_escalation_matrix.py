"""No escalation, over every actor and every route that gives access.

For each built-in role and each custom role holding `role.manage` and/or `member.manage`
(limited by provider groups or by a row grant, too), every attempt to reach more than the actor
holds is refused — through every route that creates, edits, deletes or assigns roles or member
attributes — and afterwards the actor's, the owner's and the other roles' effective access is
exactly what it was. A meta-test finds the routes that take a role, grants or attributes from
the live app, so a new such route fails until it is covered here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.security.permissions import PERMISSIONS
from tests.helpers import Api, User, api_routes, assert_problem

ACTORS: dict[str, dict[str, Any] | str] = {
    "admin": "admin",
    "approver": "approver",
    "engineer": "engineer",
    "viewer": "viewer",
    "role manager": {"inherits_from": "viewer", "grants": ["role.manage"]},
    "member manager": {"inherits_from": "viewer", "grants": ["member.manage"]},
    "both managers": {"inherits_from": "engineer", "grants": ["role.manage", "member.manage"]},
    "grouped admin": {
        "inherits_from": "admin",
        "grants": ["role.manage"],
        "revokes": ["unlimited_visibility"],
        "groups": True,
    },
    "regional manager": {
        "inherits_from": "viewer",
        "grants": ["role.manage", "member.manage"],
        "region": "us",
    },
}


@dataclass
class World:
    api: Api
    slug: str
    owner: User
    actor: User
    actor_id: str
    owner_id: str
    victim: User
    victim_id: str
    own_role: str | None  # the actor's custom role id
    power_role: str  # a custom role beyond every actor (admin + role.manage)
    owner_role: str  # a custom role inheriting owner
    group: str
    other_group: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    regional: bool = False  # its rows are limited by a grant on its region attribute

    @property
    def base(self) -> str:
        return f"/ws/{self.slug}/api/v1"

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.api.client.request(
            method, f"{self.base}/{path}", json=body, headers=self.actor.headers
        )

    def unheld(self) -> str | None:
        return next((p for p in PERMISSIONS if p not in self.permissions), None)


async def _make(api: Api, name: str) -> World:
    owner, actor, victim = await api.user("owner"), await api.user("actor"), await api.user("v")
    slug = await api.workspace(owner)
    base = f"/ws/{slug}/api/v1"
    p1 = await api.provider(owner, slug, region="us")
    p2 = await api.provider(owner, slug, region="eu")
    group = await api.group(owner, slug, provider_ids=[p1["id"]])
    other = await api.group(owner, slug, provider_ids=[p2["id"]])

    async def role(body: dict[str, Any]) -> str:
        r = await api.client.post(f"{base}/roles", json=body, headers=owner.headers)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    power = await role({"name": "power", "inherits_from": "admin", "grants": ["role.manage"]})
    owner_role = await role({"name": "almost owner", "inherits_from": "owner"})
    spec = ACTORS[name]
    own_role = None
    if isinstance(spec, dict):
        body = {k: v for k, v in spec.items() if k in ("inherits_from", "grants", "revokes")}
        if spec.get("groups"):
            body["provider_group_ids"] = [group["id"]]
        own_role = await role({"name": f"actor {name}", **body})
    await api.add_member(owner, slug, actor, own_role or str(spec))
    await api.add_member(owner, slug, victim, "viewer")
    ids = {u.email: (await api.me(u))["id"] for u in (owner, actor, victim)}
    if isinstance(spec, dict) and spec.get("region"):
        r = await api.client.patch(
            f"{base}/members/{ids[actor.email]}",
            json={"attributes": {"region": spec["region"]}},
            headers=owner.headers,
        )
        assert r.status_code == 200, r.text
    me = await api.me(actor)
    permissions = next(m for m in me["memberships"] if m["workspace"] == slug)["permissions"]
    return World(
        api,
        slug,
        owner,
        actor,
        ids[actor.email],
        ids[owner.email],
        victim,
        ids[victim.email],
        own_role,
        power,
        owner_role,
        group["id"],
        other["id"],
        frozenset(permissions),
        isinstance(spec, dict) and bool(spec.get("region")),
    )


Attempt = Callable[[World], Awaitable[list[httpx.Response]]]
ATTEMPTS: dict[str, tuple[tuple[str, str], Attempt]] = {}


def attempt(method: str, path: str) -> Callable[[Attempt], Attempt]:
    """Register an escalation attempt through the route `method path` (a template)."""

    def register(fn: Attempt) -> Attempt:
        ATTEMPTS[fn.__name__] = ((method, path), fn)
        return fn

    return register


ROLES = "/ws/{slug}/api/v1/roles"
MEMBERS = "/ws/{slug}/api/v1/members"
INVITATIONS = "/ws/{slug}/api/v1/invitations"


@attempt("POST", ROLES)
async def create_owner_based_role(w: World) -> list[httpx.Response]:
    return [await w.call("POST", "roles", {"name": "mine", "inherits_from": "owner"})]


@attempt("POST", ROLES)
async def create_role_with_unheld_grants(w: World) -> list[httpx.Response]:
    out = [await w.call("POST", "roles", {"name": "more", "inherits_from": "admin"})]
    extra = w.unheld()
    if extra:
        body = {"name": "more2", "inherits_from": "viewer", "grants": [extra]}
        out.append(await w.call("POST", "roles", body))
    return out


@attempt("POST", ROLES)
async def create_role_seeing_other_groups(w: World) -> list[httpx.Response]:
    body = {
        "name": "wider",
        "inherits_from": "viewer",
        "revokes": ["unlimited_visibility"],
        "provider_group_ids": [w.group, w.other_group],
    }
    if "unlimited_visibility" in w.permissions:
        return []  # it sees every group: not beyond it
    return [await w.call("POST", "roles", body)]


@attempt("PATCH", ROLES + "/{role_id}")
async def edit_own_role_upwards(w: World) -> list[httpx.Response]:
    if w.own_role is None:
        return []
    path = f"roles/{w.own_role}"
    out = [await w.call("PATCH", path, {"inherits_from": "owner"})]
    if "unlimited_visibility" not in w.permissions:
        out.append(await w.call("PATCH", path, {"revokes": []}))
    extra = w.unheld()
    if extra:
        out.append(await w.call("PATCH", path, {"grants": [*sorted(w.permissions), extra]}))
    if "unlimited_visibility" not in w.permissions:
        out.append(await w.call("PATCH", path, {"provider_group_ids": [w.group, w.other_group]}))
    return out


@attempt("PATCH", ROLES + "/{role_id}")
async def edit_a_role_beyond_oneself(w: World) -> list[httpx.Response]:
    return [
        await w.call("PATCH", f"roles/{w.power_role}", {"name": "renamed"}),
        await w.call("PATCH", f"roles/{w.owner_role}", {"inherits_from": "viewer"}),
    ]


@attempt("DELETE", ROLES + "/{role_id}")
async def delete_a_role_beyond_oneself(w: World) -> list[httpx.Response]:
    return [
        await w.call("DELETE", f"roles/{w.power_role}"),
        await w.call("DELETE", f"roles/{w.owner_role}"),
    ]


@attempt("PATCH", MEMBERS + "/{user_id}")
async def promote_oneself(w: World) -> list[httpx.Response]:
    path = f"members/{w.actor_id}"
    return [
        await w.call("PATCH", path, {"role": "owner"}),
        await w.call("PATCH", path, {"role": w.power_role}),
        await w.call("PATCH", path, {"role": w.owner_role}),
    ]


@attempt("PATCH", MEMBERS + "/{user_id}")
async def widen_own_attributes(w: World) -> list[httpx.Response]:
    if not w.regional:
        return []  # attributes limit no rows of its role: not beyond it
    return [
        await w.call("PATCH", f"members/{w.actor_id}", {"attributes": {"region": ["us", "eu"]}}),
        await w.call("PATCH", f"members/{w.actor_id}", {"attributes": {}}),
    ]


@attempt("POST", MEMBERS)
async def add_someone_above_oneself(w: World) -> list[httpx.Response]:
    newcomer = await w.api.user("new")
    out = []
    for role in ("owner", w.power_role, w.owner_role):
        out.append(await w.call("POST", "members", {"email": newcomer.email, "role": role}))
    return out


@attempt("POST", INVITATIONS)
async def invite_someone_above_oneself(w: World) -> list[httpx.Response]:
    invited = await w.api.user("invited")
    out = []
    for role in ("owner", w.power_role, w.owner_role):
        out.append(await w.call("POST", "invitations", {"email": invited.email, "role": role}))
    return out


@attempt("PATCH", MEMBERS + "/{user_id}")
async def promote_someone_above_oneself(w: World) -> list[httpx.Response]:
    path = f"members/{w.victim_id}"
    return [
        await w.call("PATCH", path, {"role": "owner"}),
        await w.call("PATCH", path, {"role": w.power_role}),
    ]


@attempt("PATCH", MEMBERS + "/{user_id}")
async def demote_the_owner(w: World) -> list[httpx.Response]:
    return [await w.call("PATCH", f"members/{w.owner_id}", {"role": "viewer"})]


@attempt("DELETE", MEMBERS + "/{user_id}")
async def remove_the_owner(w: World) -> list[httpx.Response]:
    return [await w.call("DELETE", f"members/{w.owner_id}")]


@attempt("POST", "/ws/{slug}/api/v1/idp-groups")
async def map_an_idp_group_above_oneself(w: World) -> list[httpx.Response]:
    """A group mapping gives its role at the next sign-in of every member of the group."""
    return [
        await w.call("POST", "idp-groups", {"group": f"g-{i}", "role": role})
        for i, role in enumerate(("owner", w.power_role, w.owner_role))
    ]


async def _access(w: World) -> dict[str, Any]:
    """Everyone's effective access in the workspace, and every role's definition."""
    members = await w.api.client.get(f"{w.base}/members", headers=w.owner.headers)
    roles = await w.api.client.get(f"{w.base}/roles", headers=w.owner.headers)
    mappings = await w.api.client.get(f"{w.base}/idp-groups", headers=w.owner.headers)
    me = await w.api.me(w.actor)
    return {
        "mappings": sorted(str(m) for m in mappings.json()["data"]),
        "members": sorted(
            (m["user_id"], m["role"], m["custom_role_id"], str(m["attributes"]))
            for m in members.json()["data"]
        ),
        "roles": sorted(str(r) for r in roles.json()["data"]),
        "actor": next(m for m in me["memberships"] if m["workspace"] == w.slug)["permissions"],
    }


@pytest.mark.parametrize("name", list(ACTORS))
async def test_no_actor_reaches_beyond_what_it_holds(name, api):
    w = await _make(api, name)
    before = await _access(w)
    for label, (_, run) in ATTEMPTS.items():
        for r in await run(w):
            assert 400 <= r.status_code < 500, (name, label, r.status_code, r.text)
            assert_problem(r)
    after = await _access(w)
    assert after == before, name


def test_every_route_that_gives_access_has_attempts(app):
    """A route whose body takes a role, grants, revokes, provider groups or attributes is an
    escalation path: it must have attempts above."""
    sensitive = {"role", "inherits_from", "grants", "revokes", "provider_group_ids", "attributes"}
    covered = {key for key, _ in ATTEMPTS.values()}
    missing, found = [], 0
    for route in api_routes(app):
        body = route.body_field
        model = body.field_info.annotation if body is not None else None
        names = set(getattr(model, "model_fields", {}) or {})
        if names & sensitive:
            found += 1
            for method in route.methods:
                if (method, route.path) not in covered:
                    missing.append((method, route.path))
    assert missing == []
    assert found >= 4  # members POST/PATCH, roles POST/PATCH: the walk sees the bodies


async def test_two_owners_removing_each_other_one_wins(api):
    """Concurrent owner changes never answer 5xx: one wins, the other gets a clear 409."""
    for _ in range(3):
        a, b = await api.user("a"), await api.user("b")
        slug = await api.workspace(a)
        await api.add_member(a, slug, b, "owner")
        ids = {u.email: (await api.me(u))["id"] for u in (a, b)}
        base = f"/ws/{slug}/api/v1/members"
        results = await asyncio.gather(
            api.client.delete(f"{base}/{ids[b.email]}", headers=a.headers),
            api.client.delete(f"{base}/{ids[a.email]}", headers=b.headers),
        )
        statuses = sorted(r.status_code for r in results)
        assert statuses in ([204, 404], [204, 409]), [r.text for r in results]
        for r in results:
            if r.status_code != 204:
                assert_problem(r)
        winner = a if results[0].status_code == 204 else b
        listed = (await api.client.get(base, headers=winner.headers)).json()["data"]
        assert [m["user_id"] for m in listed if m["role"] == "owner"] == [ids[winner.email]]
