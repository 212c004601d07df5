"""`/api/v1/auth/...` and `/api/v1/me`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.db.models import User
from app.errors import Forbidden
from app.openapi.problems import declare
from app.schemas.auth import (
    LoginIn,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    TokenOut,
    UserOut,
)
from app.security.audit import AuditedRoute, redact
from app.security.deps import UserSession
from app.services import auth

router = APIRouter(
    prefix="/api/v1", tags=["auth"], route_class=AuditedRoute, responses=declare(503)
)


def _client(request: Request, body: dict[str, Any] | None = None) -> auth.Client:
    return auth.Client(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        method=request.method,
        path=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        body=redact(body) if body is not None else None,
    )


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    operation_id="auth_register",
    responses={
        403: {"description": "Sign-up is disabled on this installation"},
        409: {"description": "An account with this email exists"},
    },
)
async def register_user(body: RegisterIn, request: Request) -> User:
    settings = request.app.state.settings
    if not settings.signup_enabled:
        raise Forbidden("Sign-up is disabled on this installation")
    return await auth.register(
        request.app.state.db,
        settings,
        body.email,
        body.password,
        body.name,
        _client(request, body.model_dump()),
    )


async def _login(request: Request, email: str, password: str) -> TokenOut:
    state = request.app.state
    client = _client(request, {"email": email, "password": password})
    tokens = await auth.login(state.db, state.redis, state.settings, email, password, client)
    return TokenOut(**tokens.__dict__)


LOGIN_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong email or password (the same answer for both)"},
    429: {"description": "Too many failed logins from this client; see `Retry-After`"},
}


@router.post("/auth/login", response_model=TokenOut, responses=LOGIN_PROBLEMS)
async def login(body: LoginIn, request: Request) -> TokenOut:
    return await _login(request, body.email, body.password)


@router.post("/auth/token", response_model=TokenOut, responses=LOGIN_PROBLEMS)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request
) -> TokenOut:
    """OAuth2 password flow (the Swagger UI *Authorize* button); `username` is the email."""
    return await _login(request, form.username, form.password)


@router.post(
    "/auth/refresh",
    response_model=TokenOut,
    responses={401: {"description": "Unknown, expired, revoked or spent refresh token"}},
)
async def refresh(body: RefreshIn, request: Request) -> TokenOut:
    state = request.app.state
    tokens = await auth.refresh(
        state.db,
        state.settings,
        body.refresh_token,
        _client(request, body.model_dump()),
    )
    return TokenOut(**tokens.__dict__)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(ctx: UserSession) -> Response:
    """Revoke this login (its refresh tokens and, from the next request on, its access tokens)."""
    await auth.logout(ctx)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        400: {"description": "The current password is wrong"},
        429: {"description": "Too many failed attempts; see `Retry-After`"},
    },
)
async def change_password(body: PasswordChangeIn, ctx: UserSession, request: Request) -> Response:
    """Change the password; every session of the user (this one too) is revoked."""
    state = request.app.state
    await auth.change_password(
        ctx,
        state.redis,
        state.settings,
        body.current_password,
        body.new_password,
        _client(request),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
