"""Auth providers: who a set of credentials proves, behind one interface.

Routes never name a provider. `/auth/login` hands `PasswordCredentials`, `/auth/oidc` and a
bearer token Warden did not issue hand `TokenCredentials` to the configured providers in order;
the first that recognises them answers with an `Identity` (a local user, or a person at an
external IdP whom the sign-in service provisions). Built in: the password provider and, when
`WARDEN_OIDC_ISSUER` is set, the OIDC provider. Another (LDAP, SAML …) is a class with a `name`
and `authenticate`, added in `configured()`.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request

from app.config import Settings
from app.errors import Unauthorized
from app.security.passwords import hasher, verify_password
from app.security.principal import UserPrincipal

if TYPE_CHECKING:
    from app.db.session import Database

INVALID_LOGIN = "Invalid email or password"


@dataclass(frozen=True)
class PasswordCredentials:
    email: str
    password: str


@dataclass(frozen=True)
class TokenCredentials:
    token: str


Credentials = PasswordCredentials | TokenCredentials


@dataclass(frozen=True)
class Identity:
    """What a provider proved: a local user (`user_id`), or a person at an external IdP
    (`issuer` + `subject`, with the email, name and groups the IdP asserts)."""

    provider: str
    user_id: uuid.UUID | None = None
    issuer: str | None = None
    subject: str | None = None
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    groups: tuple[str, ...] = ()
    expires_at: int | None = None  # when the proof itself expires (an IdP token)
    needs_rehash: bool = False  # a password hash below the configured cost
    # The stored hash that was verified (the rehash replaces exactly it); never shown.
    password_hash: str | None = field(default=None, repr=False)

    @property
    def external(self) -> bool:
        return self.user_id is None


class AuthProvider(Protocol):
    name: str

    async def authenticate(self, db: Database | None, credentials: Credentials) -> Identity | None:
        """The identity these credentials prove; None when they are not for this provider or
        do not prove anything to it; `Unauthorized` for credentials it owns and refuses. A
        provider that reads the database takes a connection of `db` only for the read."""


class PasswordProvider:
    """Email and password against the user table (argon2id; the same work for an unknown
    email as for a wrong password). The hash is checked holding no database connection: it
    takes tens of milliseconds in the hashing pool, behind every other login, and a burst of
    logins must not drain the connection pool that every other request needs."""

    name = "password"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def authenticate(self, db: Database | None, credentials: Credentials) -> Identity | None:
        if db is None or not isinstance(credentials, PasswordCredentials):
            return None
        lookup = credentials.email.strip().lower()
        row = None
        if "\x00" not in lookup:  # no stored email holds NUL, and the database refuses it
            async with db.transaction() as tx:  # one read; the connection is back before hashing
                row = await tx.lookup(
                    "SELECT user_id, password_hash, is_active FROM warden_login_lookup($1)", lookup
                )
        stored: str | None = row["password_hash"] if row else None
        if not await verify_password(self.settings, stored, credentials.password):
            return None
        if row is None or stored is None or not row["is_active"]:
            return None
        return Identity(
            self.name,
            user_id=row["user_id"],
            needs_rehash=hasher(self.settings).check_needs_rehash(stored),
            password_hash=stored,
        )


class AuthProviders:
    """The configured providers, tried in order."""

    def __init__(self, providers: list[Any]) -> None:
        self.providers: list[AuthProvider] = providers

    async def authenticate(self, db: Database | None, credentials: Credentials) -> Identity:
        for provider in self.providers:
            identity = await provider.authenticate(db, credentials)
            if identity is not None:
                return identity
        if isinstance(credentials, PasswordCredentials):
            raise Unauthorized(INVALID_LOGIN)
        raise Unauthorized()

    def named(self, name: str) -> AuthProvider | None:
        return next((p for p in self.providers if p.name == name), None)


def configured(settings: Settings) -> AuthProviders:
    from app.security.oidc import OidcProvider

    providers: list[Any] = [PasswordProvider(settings)]
    if settings.oidc_issuer:
        providers.append(OidcProvider(settings))
    return AuthProviders(providers)


SignIn = Callable[[Request, Identity], Awaitable[UserPrincipal]]
BEARER_CACHE_SIZE = 10_000


class BearerSignIns:
    """IdP tokens used as bearer tokens: the first request with a token signs its person in
    (provisioning, group sync, a Warden login family that ends when the token does); later
    requests with the same token reuse that login, whose validity is still read on every
    request. `sign_in` is registered by the layer that owns sign-in."""

    def __init__(self, providers: AuthProviders, sign_in: SignIn) -> None:
        self.providers = providers
        self.sign_in = sign_in
        self._signed_in: OrderedDict[str, tuple[UserPrincipal, int]] = OrderedDict()

    async def principal(self, request: Request, token: str) -> UserPrincipal:
        hit = self._signed_in.get(token)
        if hit is not None:
            principal, expires_at = hit
            if time.time() < expires_at:
                self._signed_in.move_to_end(token)
                return principal
            del self._signed_in[token]
            raise Unauthorized()
        identity = await self.providers.authenticate(None, TokenCredentials(token))
        if not identity.external or identity.expires_at is None:
            raise Unauthorized()
        principal = await self.sign_in(request, identity)
        self._signed_in[token] = (principal, identity.expires_at)
        if len(self._signed_in) > BEARER_CACHE_SIZE:
            self._signed_in.popitem(last=False)
        return principal
