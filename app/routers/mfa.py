"""`/api/v1/me/mfa`: the caller's TOTP second factor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.openapi.problems import declare
from app.schemas.identity import CodeIn, MfaStatusOut, RecoveryCodesOut, TotpEnrolmentOut
from app.security.audit import AuditedRoute
from app.security.deps import AccountSession, UserSession
from app.services import mfa

router = APIRouter(prefix="/api/v1/me/mfa", tags=["mfa"], route_class=AuditedRoute)


@router.get("", response_model=MfaStatusOut)
async def get_mfa(ctx: UserSession) -> dict[str, Any]:
    return await mfa.status(ctx)


@router.post(
    "/totp",
    status_code=status.HTTP_201_CREATED,
    response_model=TotpEnrolmentOut,
    responses=declare(409),
)
async def enrol_totp(ctx: AccountSession, request: Request) -> dict[str, Any]:
    """Start enrolling an authenticator app: its secret and `otpauth://` URI (also as a QR code
    at `qr.png`). Nothing changes at login until a code is confirmed."""
    return await mfa.enroll(ctx, request.app.state.settings)


@router.get(
    "/totp/qr.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The enrolment's QR code"},
        **declare(404),
    },
)
async def get_totp_qr(ctx: AccountSession, request: Request) -> Response:
    png = await mfa.qr_code(ctx, request.app.state.settings)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/totp/confirm", response_model=RecoveryCodesOut, responses=declare(404, 409, 429))
async def confirm_totp(body: CodeIn, ctx: AccountSession, request: Request) -> dict[str, Any]:
    """Turn TOTP on with a code from the app. Returns ten one-time recovery codes, shown only
    now. From the next login on, a code is asked after the password."""
    state = request.app.state
    return {"recovery_codes": await mfa.confirm(ctx, state.settings, state.redis, body.code)}


@router.delete("/totp", status_code=status.HTTP_204_NO_CONTENT, responses=declare(404, 409, 429))
async def disable_totp(body: CodeIn, ctx: AccountSession, request: Request) -> Response:
    """Turn TOTP off with a current code or a recovery code."""
    state = request.app.state
    await mfa.disable(ctx, state.settings, state.redis, body.code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
