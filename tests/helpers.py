"""Test helpers that drive the API the way a client does."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

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
        r = await self.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
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
            f"/ws/{slug}/api/v1/members", json={"email": member.email, "role": role},
            headers=owner.headers,
        )
        assert r.status_code == 201, r.text

    async def provider(self, user: User, slug: str, **fields: Any) -> dict[str, Any]:
        body = {"provider_type": "aws", "uid": aws_uid(), **fields}
        r = await self.client.post(f"/ws/{slug}/api/v1/providers", json=body, headers=user.headers)
        assert r.status_code == 201, r.text
        return r.json()
