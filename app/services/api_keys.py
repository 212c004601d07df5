"""API keys: a user's personal keys and a workspace's service keys — made (the secret shown
once), listed (never the secret), revoked (at once: every request reads the key afresh)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update

from app.config import Settings
from app.db.models import ApiKey, ServiceKey
from app.errors import BadRequest, NotFound
from app.query import Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.identity import ApiKeyCreate, KeyLimitsIn, ServiceKeyCreate
from app.security.api_keys import KEY_NEVER, new_key
from app.security.permissions import UnknownPermission, validate_keys
from app.security.principal import UserContext, WorkspaceContext
from app.services import workspaces

SERVICE_KEYS = Resource(
    name="service_key",
    base=lambda: select(ServiceKey).where(ServiceKey.revoked_at.is_(None)),
    fields={
        "id": Field(ServiceKey.id, Uuid()),
        "name": Field(ServiceKey.name, Text()),
        "prefix": Field(ServiceKey.prefix, Text()),
        "created_by": Field(ServiceKey.created_by, Uuid()),
        "expires_at": Field(ServiceKey.expires_at, Timestamp(), nullable=True),
        "last_used_at": Field(ServiceKey.last_used_at, Timestamp(), nullable=True),
        "created_at": Field(ServiceKey.created_at, Timestamp()),
    },
    default_sort=("-created_at",),
)


def _limits(data: KeyLimitsIn) -> dict[str, Any]:
    """The stored form of a key's limits (unknown permissions and those no key may hold are
    refused: a key that silently could not do what it was made for helps nobody)."""
    permissions = None
    if data.permissions is not None:
        try:
            permissions = validate_keys(data.permissions)
        except UnknownPermission as exc:
            raise BadRequest(str(exc)) from None
        never = sorted(set(permissions) & KEY_NEVER)
        if never:
            raise BadRequest(
                f"API keys never hold {', '.join(never)}: managing access takes a person"
            )
    endpoints = (
        [{"method": e.method, "path": e.path} for e in data.permitted_endpoints]
        if data.permitted_endpoints is not None
        else None
    )
    return {
        "permissions": permissions,
        "permitted_endpoints": endpoints,
        "expires_at": data.expires_at,
    }


def _out(key: ApiKey | ServiceKey, **extra: Any) -> dict[str, Any]:
    columns = ("id", "name", "prefix", "permissions", "permitted_endpoints", "expires_at")
    values = {c: getattr(key, c) for c in columns}
    return {**values, "last_used_at": key.last_used_at, "created_at": key.created_at, **extra}


async def create_personal(
    ctx: UserContext, settings: Settings, data: ApiKeyCreate
) -> dict[str, Any]:
    bound = None
    if data.workspace is not None:
        mine = {w["slug"]: w["id"] for w in await workspaces.list_workspaces(ctx)}
        if data.workspace not in mine:
            raise NotFound(f"You are not a member of workspace '{data.workspace}'")
        bound = mine[data.workspace]
    secret, prefix, digest = new_key(settings)
    key = ApiKey(
        user_id=ctx.principal.user_id,
        name=data.name,
        prefix=prefix,
        secret_hash=digest,
        bound_workspace_id=bound,
        **_limits(data),
    )
    ctx.session.add(key)
    await ctx.session.flush()
    await ctx.session.refresh(key, ["created_at"])
    return _out(key, workspace=data.workspace, workspace_id=bound, secret=secret)


async def list_personal(ctx: UserContext) -> list[dict[str, Any]]:
    slugs = {w["id"]: w["slug"] for w in await workspaces.list_workspaces(ctx)}
    keys = (
        await ctx.session.execute(
            select(ApiKey)
            .where(ApiKey.user_id == ctx.principal.user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
    ).scalars()
    return [
        _out(k, workspace=slugs.get(k.bound_workspace_id), workspace_id=k.bound_workspace_id)
        for k in keys
    ]


async def revoke_personal(ctx: UserContext, key_id: uuid.UUID) -> None:
    result = await ctx.session.execute(
        update(ApiKey)
        .where(
            ApiKey.user_id == ctx.principal.user_id,
            ApiKey.id == key_id,
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("API key not found")


async def create_service(
    ctx: WorkspaceContext, settings: Settings, data: ServiceKeyCreate
) -> dict[str, Any]:
    """A key of the workspace that acts as its maker, narrowed (so never beyond them)."""
    secret, prefix, digest = new_key(settings)
    key = ServiceKey(
        created_by=ctx.user_id, name=data.name, prefix=prefix, secret_hash=digest, **_limits(data)
    )
    ctx.session.add(key)
    await ctx.session.flush()
    await ctx.session.refresh(key, ["created_at"])
    return _out(key, created_by=key.created_by, secret=secret)


async def list_service(ctx: WorkspaceContext, query: ListQuery) -> list[ServiceKey]:
    return list((await ctx.session.execute(query.statement())).scalars())


async def get_service(ctx: WorkspaceContext, key_id: uuid.UUID) -> ServiceKey:
    stmt = select(ServiceKey).where(ServiceKey.id == key_id, ServiceKey.revoked_at.is_(None))
    key = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if key is None:
        raise NotFound("Service key not found")
    return key


async def revoke_service(ctx: WorkspaceContext, key_id: uuid.UUID) -> None:
    result = await ctx.session.execute(
        update(ServiceKey)
        .where(ServiceKey.id == key_id, ServiceKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("Service key not found")
