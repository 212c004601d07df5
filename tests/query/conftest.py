"""A workspace with providers whose fields cover the awkward cases (nulls, case, `%` and `_`,
unicode, backslashes, quotes), plus a second workspace that must never show up."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import Api, User, aws_uid

ALIASES = [
    "prod",
    "prod-eu",
    "Prod",
    "PROD eu",
    "staging",
    "100%",
    "100_",
    "a%b",
    "a_b",
    "ab",
    "ümlaut-café",
    "日本語",
    "🚀 launch",
    "back\\slash",
    "quote'x",
    None,
    None,
    "pro",
    "z",
]
REGIONS = [None, "eu", "us", "eu-west", "ap"]


def uid_for(kind: str) -> str:
    return {
        "aws": aws_uid(),
        "gcp": "proj-" + secrets.token_hex(4),
        "azure": str(uuid.uuid4()),
        "github": "gh" + secrets.token_hex(4),
        "m365": f"t{secrets.token_hex(3)}.onmicrosoft.com",
    }[kind]


@dataclass
class Catalog:
    owner: User
    slug: str
    providers: list[dict[str, Any]]
    other: User
    other_slug: str
    other_providers: list[dict[str, Any]]
    workspace_id: str = ""
    owner_id: str = ""
    other_workspace_id: str = ""
    other_id: str = ""


@pytest.fixture(scope="module")
async def catalog(client) -> Catalog:
    api = Api(client)
    owner, other = await api.user("owner"), await api.user("other")
    slug, other_slug = await api.workspace(owner), await api.workspace(other)
    kinds = ["aws", "gcp", "azure", "github", "m365"]
    providers = []
    for i, alias in enumerate(ALIASES):
        kind = kinds[i % len(kinds)]
        fields: dict[str, Any] = {"provider_type": kind, "uid": uid_for(kind)}
        if alias is not None:
            fields["alias"] = alias
        if REGIONS[i % len(REGIONS)] is not None:
            fields["region"] = REGIONS[i % len(REGIONS)]
        providers.append(await api.provider(owner, slug, **fields))
    gone = await api.provider(owner, slug, alias="deleted")
    r = await client.delete(f"/ws/{slug}/api/v1/providers/{gone['id']}", headers=owner.headers)
    assert r.status_code == 204
    other_providers = [
        await api.provider(other, other_slug, alias=a, region="eu") for a in ("prod", "100%", "x")
    ]
    return Catalog(
        owner,
        slug,
        providers,
        other,
        other_slug,
        other_providers,
        workspace_id=await api.workspace_id(owner, slug),
        owner_id=(await api.me(owner))["id"],
        other_workspace_id=await api.workspace_id(other, other_slug),
        other_id=(await api.me(other))["id"],
    )


async def fetch_all(
    client, path: str, headers: dict[str, str], params: Any = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Every row of a list (follows next_cursor), asserting each page is a 200."""
    rows: list[dict[str, Any]] = []
    items = list(params.items()) if isinstance(params, dict) else list(params or [])
    cursor = None
    for _ in range(500):
        page_params = [*items, ("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        r = await client.get(path, params=page_params, headers=headers)
        assert r.status_code == 200, (params, r.text)
        body = r.json()
        assert len(body["data"]) <= limit
        rows += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            return rows
    raise AssertionError("pagination did not end")
