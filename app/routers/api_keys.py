"""`/api/v1/me/api-keys`: the caller's personal API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.openapi.problems import declare
from app.schemas.common import Page
from app.schemas.identity import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.security.audit import AuditedRoute
from app.security.deps import AccountSession, UserSession, parse_id
from app.services import api_keys

router = APIRouter(prefix="/api/v1/me/api-keys", tags=["api keys"], route_class=AuditedRoute)


@router.get("", response_model=Page[ApiKeyOut])
async def list_api_keys(ctx: UserSession) -> dict[str, Any]:
    """Your active keys (prefix, limits, expiry, last use; never the secret)."""
    return {"data": await api_keys.list_personal(ctx), "next_cursor": None}


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=declare(404)
)
async def create_api_key(body: ApiKeyCreate, ctx: AccountSession, request: Request) -> Any:
    """A key that acts as you, narrowed: to `workspace` when given, to the intersection of
    `permissions` with what you hold at each request, to `permitted_endpoints`. The secret is
    in this response only. Send it as `X-API-Key` or `Authorization: Bearer`."""
    return await api_keys.create_personal(ctx, request.app.state.settings, body)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=declare(404))
async def revoke_api_key(key_id: str, ctx: AccountSession) -> Response:
    """Revoke the key; its next request is refused."""
    await api_keys.revoke_personal(ctx, parse_id(key_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
