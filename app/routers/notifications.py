"""`/api/v1/me/notifications`: the caller's own notifications, across workspaces."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.query import ListQuery
from app.schemas.change_management import NotificationOut, ReadAllOut
from app.schemas.common import Page
from app.security.audit import AuditedRoute
from app.security.deps import UserSession, parse_id
from app.services import notifications
from app.services.notifications import NOTIFICATIONS

router = APIRouter(prefix="/api/v1/me/notifications", tags=["me"], route_class=AuditedRoute)


@router.get(
    "",
    response_model=Page[NotificationOut],
    description=NOTIFICATIONS.doc(
        "Your notifications, newest first, from every workspace you are a member of (and "
        "invitations to join one). E.g. `?unread=true`, `?kind=change.submitted`, "
        "`?workspace=acme-prod`, `?created_at__gte=2024-05-01`."
    ),
)
async def list_my_notifications(
    ctx: UserSession, query: Annotated[ListQuery, Depends(NOTIFICATIONS.list_query)]
) -> dict[str, Any]:
    return query.page(await notifications.list_notifications(ctx, query))


@router.post("/read-all", response_model=ReadAllOut)
async def read_all_notifications(ctx: UserSession) -> dict[str, Any]:
    """Mark every unread notification read."""
    return {"updated": await notifications.mark_all_read(ctx)}


@router.post(
    "/{notification_id}/read",
    response_model=NotificationOut,
    responses={404: {"description": "No such notification of yours (in a workspace you are in)"}},
)
async def read_notification(notification_id: str, ctx: UserSession) -> dict[str, Any]:
    """Mark one notification read (404 for anyone else's)."""
    return await notifications.mark_read(ctx, parse_id(notification_id))
