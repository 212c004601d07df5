"""`/api/v1/auth/...` and `/api/v1/me`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.db.models import User
from app.errors import Forbidden, Unauthorized
from app.openapi.problems import declare
from app.schemas.auth import (
    LoginIn,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    TokenOut,
    UserOut,
)
from app.schemas.identity import MfaLoginIn, MfaRequiredOut, OidcLoginIn
from app.security.audit import AuditedRoute, redact
from app.security.deps import AccountSession
from app.security.principal import UserPrincipal
from app.security.providers import Identity
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


async def _login(request: Request, email: str, password: str) -> auth.Tokens | auth.MfaChallenge:
    state = request.app.state
    client = _client(request, {"email": email, "password": password})
    return await auth.login(
        state.db, state.redis, state.settings, email, password, client, state.auth_providers
    )


LOGIN_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong email or password (the same answer for both)"},
    429: {"description": "Too many failed logins from this client; see `Retry-After`"},
}


@router.post("/auth/login", response_model=TokenOut | MfaRequiredOut, responses=LOGIN_PROBLEMS)
async def login(body: LoginIn, request: Request) -> TokenOut | MfaRequiredOut:
    """Email and password. With TOTP on, the answer is `{mfa_required: true, mfa_token}`:
    finish at `POST /api/v1/auth/mfa`."""
    result = await _login(request, body.email, body.password)
    if isinstance(result, auth.MfaChallenge):
        return MfaRequiredOut(mfa_token=result.mfa_token, expires_in=result.expires_in)
    return TokenOut(**result.__dict__)


@router.post("/auth/token", response_model=TokenOut, responses=LOGIN_PROBLEMS)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request
) -> TokenOut:
    """OAuth2 password flow (the Swagger UI *Authorize* button); `username` is the email.
    Accounts with TOTP on log in with `/auth/login` and `/auth/mfa` instead."""
    result = await _login(request, form.username, form.password)
    if isinstance(result, auth.MfaChallenge):
        raise Unauthorized("This account uses a second factor: log in with /api/v1/auth/login")
    return TokenOut(**result.__dict__)


@router.post("/auth/mfa", response_model=TokenOut, responses=declare(401, 429))
async def login_mfa(body: MfaLoginIn, request: Request) -> TokenOut:
    """The second step of a login: the `mfa_token` from `/auth/login` and a TOTP code (or a
    recovery code). Each code works once; wrong codes are throttled."""
    state = request.app.state
    tokens = await auth.complete_mfa(
        state.db, state.redis, state.settings, body.mfa_token, body.code, _client(request)
    )
    return TokenOut(**tokens.__dict__)


@router.post("/auth/oidc", response_model=TokenOut, responses=declare(401, 403, 409))
async def login_oidc(body: OidcLoginIn, request: Request) -> TokenOut:
    """Exchange a token of the configured identity provider (an ID token) for Warden's pair.
    First sign-in creates the user; memberships follow the token's groups at every sign-in."""
    state = request.app.state
    if state.auth_providers.named("oidc") is None:
        raise Forbidden("Sign-in with an identity provider is not configured here")
    tokens = await auth.token_login(
        state.db, state.settings, state.auth_providers, body.id_token, _client(request)
    )
    return TokenOut(**tokens.__dict__)


async def bearer_sign_in(request: Request, identity: Identity) -> UserPrincipal:
    """An IdP token used directly as a bearer token: the same sign-in as `/auth/oidc`, with a
    login that ends when the token does."""
    state = request.app.state
    until = datetime.fromtimestamp(identity.expires_at or 0, UTC)
    user_id, family_id, _ = await auth.external_sign_in(
        state.db, state.settings, identity, _client(request), until=until
    )
    return UserPrincipal(user_id=user_id, family_id=family_id)


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
async def logout(ctx: AccountSession) -> Response:
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
async def change_password(
    body: PasswordChangeIn, ctx: AccountSession, request: Request
) -> Response:
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
