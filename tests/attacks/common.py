"""Shared set-up for the review's attack tests: a workspace with two regional providers, and
small helpers to read cursors and member access."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers import Api, User

ENGINEER_ONLY = [
    "provider.create",
    "provider.update",
    "provider.delete",
    "change.create",
    "incident.create",
    "incident.update",
    "scan.create",
    "finding.mute",
    "task.cancel",
]
ADMIN_ONLY = [
    *ENGINEER_ONLY,
    "provider_group.manage",
    "member.manage",
    "workspace.update",
    "audit.read",
    "change.approve",
    "change.bulk_approve",
]


def decode_cursor(cursor: str) -> Any:
    """Whatever an attacker can read out of a cursor: its bytes, and the JSON inside them if
    any (a sealed cursor has none)."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    try:
        return json.loads(raw[12:])
    except ValueError:
        return raw.decode("latin-1")


@dataclass
class Ws:
    api: Api
    slug: str
    owner: User
    us: dict[str, Any]  # provider in region us
    eu: dict[str, Any]  # provider in region eu

    @property
    def base(self) -> str:
        return f"/ws/{self.slug}/api/v1"

    @property
    def client(self) -> httpx.AsyncClient:
        return self.api.client

    async def role(self, body: dict[str, Any], as_user: User | None = None) -> str:
        r = await self.client.post(
            f"{self.base}/roles", json=body, headers=(as_user or self.owner).headers
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def member(
        self, name: str, role: str, attributes: dict[str, Any] | None = None
    ) -> tuple[User, str]:
        user = await self.api.user(name)
        await self.api.add_member(self.owner, self.slug, user, role)
        user_id = str((await self.api.me(user))["id"])
        if attributes is not None:
            r = await self.client.patch(
                f"{self.base}/members/{user_id}",
                json={"attributes": attributes},
                headers=self.owner.headers,
            )
            assert r.status_code == 200, r.text
        return user, user_id

    async def get(self, user: User, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"{self.base}/{path}", params=params, headers=user.headers)


async def workspace(api: Api) -> Ws:
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    us = await api.provider(owner, slug, region="us", alias="us-prod")
    eu = await api.provider(owner, slug, region="eu", alias="eu-prod")
    return Ws(api, slug, owner, us, eu)
