"""The OpenID Connect provider: tokens signed by the configured IdP prove a person.

Invariant: a token is accepted only when its signature verifies with a key the IdP publishes
(discovered from `WARDEN_OIDC_ISSUER`, cached for `WARDEN_OIDC_JWKS_CACHE_SECONDS`), its
algorithm is on the allow-list, and its issuer, audience (`WARDEN_OIDC_AUDIENCE`) and times
are right. A token signed with a key the cached set lacks makes the set be fetched again (at
most every `WARDEN_OIDC_JWKS_REFETCH_SECONDS`), so a key rotation at the IdP is followed without
a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx

from app.config import Settings
from app.errors import ServiceUnavailable, Unauthorized
from app.security.providers import Credentials, Identity, TokenCredentials
from app.security.tokens import UnknownSigningKey, peek, verify_external

if TYPE_CHECKING:
    from app.db.session import Database

log = logging.getLogger("warden.oidc")

FETCH_TIMEOUT = 5.0


class OidcProvider:
    name = "oidc"

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_audience
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.groups_claim = settings.oidc_groups_claim
        self.algorithms = list(settings.oidc_algorithms)
        self.cache_seconds = settings.oidc_jwks_cache_seconds
        self.refetch_seconds = settings.oidc_jwks_refetch_seconds
        self.leeway = settings.oidc_leeway_seconds
        self._keys: list[dict[str, Any]] = []
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def recognises(self, token: str) -> bool:
        """The token claims to come from this IdP (not verified yet)."""
        peeked = peek(token)
        return peeked is not None and peeked[1].get("iss") == self.issuer

    async def authenticate(self, db: Database | None, credentials: Credentials) -> Identity | None:
        if not isinstance(credentials, TokenCredentials) or not self.recognises(credentials.token):
            return None
        claims = await self.verify(credentials.token)
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise Unauthorized("The identity provider's token carries no email address")
        groups = claims.get(self.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        name = claims.get("name")
        return Identity(
            self.name,
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=email.lower(),
            email_verified=claims.get("email_verified") is True,
            name=name if isinstance(name, str) and name else email.split("@")[0],
            groups=tuple(sorted({str(g) for g in groups if isinstance(g, str | int)})),
            expires_at=int(claims["exp"]),
        )

    async def verify(self, token: str) -> dict[str, Any]:
        options = {
            "algorithms": self.algorithms,
            "issuer": self.issuer,
            "audience": self.audience,
            "leeway": self.leeway,
        }
        try:
            return verify_external(token, await self._signing_keys(), **options)  # type: ignore[arg-type]
        except UnknownSigningKey:
            keys = await self._signing_keys(refetch=True)
            return verify_external(token, keys, **options)  # type: ignore[arg-type]

    async def _signing_keys(self, *, refetch: bool = False) -> list[dict[str, Any]]:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = not self._keys or age > self.cache_seconds
            if stale or (refetch and age >= self.refetch_seconds):
                try:
                    self._keys = await self._fetch()
                    self._fetched_at = time.monotonic()
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    log.warning("identity provider keys unavailable: %s", type(exc).__name__)
                    if not self._keys:
                        raise ServiceUnavailable(
                            "The identity provider cannot be reached", headers={"Retry-After": "5"}
                        ) from None
            return self._keys

    async def _fetch(self) -> list[dict[str, Any]]:
        """Discovery, then the key set it names (the discovered issuer must be ours)."""
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
            discovery = (await client.get(url)).raise_for_status().json()
            if discovery.get("issuer") != self.issuer:
                raise ValueError("the discovery document names another issuer")
            jwks = (await client.get(discovery["jwks_uri"])).raise_for_status().json()
        keys = [k for k in jwks["keys"] if isinstance(k, dict)]
        log.info("identity provider keys fetched", extra={"keys": len(keys)})
        return keys
