"""A fresh workspace per test, and direct access to its audit rows as the owner role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from tests.helpers import Api, User


@dataclass
class Workspace:
    owner: User
    slug: str
    id: uuid.UUID

    @property
    def base(self) -> str:
        return f"/ws/{self.slug}/api/v1"


@pytest.fixture
async def ws(api: Api) -> Workspace:
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    return Workspace(owner, slug, uuid.UUID(await api.workspace_id(owner, slug)))


async def verify(client, ws: Workspace) -> dict[str, Any]:
    r = await client.get(f"{ws.base}/audit/verify", headers=ws.owner.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def records(admin_engine, workspace_id: uuid.UUID) -> list[dict[str, Any]]:
    """The workspace's audit rows in chain order (unsealed last), read as the owner role."""
    async with admin_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM audit_record WHERE workspace_id = :w ORDER BY seq NULLS LAST, id"),
            {"w": workspace_id},
        )
        return [dict(r) for r in rows.mappings()]


async def shift_created_at(conn, workspace_id: uuid.UUID, ids: list[Any], delta: Any) -> None:
    """Move records' `created_at` by `delta`, row by row with the new time as a value (Citus
    refuses an UPDATE computing it from the column with a time-zone-dependent operator)."""
    rows = await conn.execute(
        text("SELECT id, created_at FROM audit_record WHERE workspace_id = :w AND id = ANY(:ids)"),
        {"w": workspace_id, "ids": list(ids)},
    )
    for row in rows.all():
        await conn.execute(
            text("UPDATE audit_record SET created_at = :t WHERE workspace_id = :w AND id = :i"),
            {"t": row.created_at + delta, "w": workspace_id, "i": row.id},
        )
