"""A workspace with one member per built-in role, and helpers to drive change requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.helpers import Api, User

ROLES = ("admin", "approver", "engineer", "viewer")


@dataclass
class Team:
    api: Api
    slug: str
    owner: User
    members: dict[str, User] = field(default_factory=dict)

    def __getattr__(self, role: str) -> User:
        try:
            return self.members[role]
        except KeyError:
            raise AttributeError(role) from None

    @property
    def client(self) -> httpx.AsyncClient:
        return self.api.client

    def url(self, rest: str = "") -> str:
        return f"/ws/{self.slug}/api/v1{rest}"

    async def call(
        self, user: User, method: str, rest: str, body: Any = None, **kw: Any
    ) -> httpx.Response:
        return await self.client.request(
            method, self.url(rest), json=body, headers=user.headers, **kw
        )

    async def change(self, user: User, **fields: Any) -> dict[str, Any]:
        body = {"title": "Rotate keys", "description": "Rotate them.", "risk": "low", **fields}
        r = await self.call(user, "POST", "/changes", body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def submitted(self, user: User, **fields: Any) -> dict[str, Any]:
        change = await self.change(user, **fields)
        r = await self.call(user, "POST", f"/changes/{change['id']}/submit")
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def approved(self, requester: User, approver: User, **fields: Any) -> dict[str, Any]:
        change = await self.submitted(requester, **fields)
        r = await self.call(approver, "POST", f"/changes/{change['id']}/approve")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "approved", r.text
        return dict(r.json())

    async def act(
        self, user: User, change_id: str, action: str, body: Any = None
    ) -> httpx.Response:
        return await self.call(user, "POST", f"/changes/{change_id}/{action}", body)


async def make_team(api: Api) -> Team:
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    team = Team(api, slug, owner)
    team.members["owner"] = owner
    for role in ROLES:
        member = await api.user(role)
        await api.add_member(owner, slug, member, role)
        member.id = (await api.me(member))["id"]
        team.members[role] = member
    owner.id = (await api.me(owner))["id"]
    return team


@pytest.fixture(scope="module")
async def team(client: httpx.AsyncClient) -> Team:
    """Shared by a module's tests (each works on changes of its own)."""
    return await make_team(Api(client))


@pytest.fixture
async def fresh_team(api: Api) -> Team:
    return await make_team(api)
