"""`/ws/{slug}/api/v1/service-keys`: the workspace's keys for services (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from app.db.models import ServiceKey
from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.common import DistinctPage, Page
from app.schemas.identity import ServiceKeyCreate, ServiceKeyCreated, ServiceKeyOut
from app.security.audit import AuditedRoute
from app.security.deps import parse_id, require
from app.security.principal import WorkspaceContext
from app.services import api_keys
from app.services.api_keys import SERVICE_KEYS

router = APIRouter(
    prefix="/ws/{slug}/api/v1/service-keys", tags=["service keys"], route_class=AuditedRoute
)

Manager = Annotated[WorkspaceContext, Depends(require("member.manage"))]


@router.get(
    "", response_model=Page[ServiceKeyOut], description=SERVICE_KEYS.doc("List service keys.")
)
async def list_service_keys(
    ctx: Manager, query: Annotated[ListQuery, Depends(SERVICE_KEYS.list_query)]
) -> dict[str, Any]:
    return query.page(await api_keys.list_service(ctx, query))


@router.post("/search/{field}", response_model=Page[ServiceKeyOut])
async def search_service_keys(
    ctx: Manager, query: Annotated[ListQuery, Depends(SERVICE_KEYS.search_query)]
) -> dict[str, Any]:
    """Service keys whose `field` is one of the JSON list of values in the body."""
    return query.page(await api_keys.list_service(ctx, query))


@router.get("/distinct/{field}", response_model=DistinctPage)
async def distinct_service_keys(
    ctx: Manager, query: Annotated[DistinctQuery, Depends(SERVICE_KEYS.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` among the service keys (filters apply)."""
    return await distinct(ctx, query)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ServiceKeyCreated)
async def create_service_key(body: ServiceKeyCreate, ctx: Manager, request: Request) -> Any:
    """A key owned by the workspace for a service. It acts as you (its maker), always in this
    workspace only, narrowed like a personal key; it stops working if you leave. The secret is
    in this response only; the audit log records the call without it."""
    return await api_keys.create_service(ctx, request.app.state.settings, body)


@router.get("/{key_id}", response_model=ServiceKeyOut)
async def get_service_key(key_id: str, ctx: Manager) -> ServiceKey:
    return await api_keys.get_service(ctx, parse_id(key_id))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_service_key(key_id: str, ctx: Manager) -> Response:
    """Revoke the key; its next request is refused."""
    await api_keys.revoke_service(ctx, parse_id(key_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
