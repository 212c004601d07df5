"""JWT access tokens, MFA tokens, opaque refresh tokens, and the verification of tokens an
external IdP signed. The only module that imports `jose`.

Invariant: decoding pins the configured algorithm (never the token's own header), and requires
`iss`, `aud`, `exp`, `iat`, `jti`, `sub` and `sid`; any failure is the same `Unauthorized`.
An MFA token (`typ` "mfa") is good for nothing but the second step of a login. Refresh tokens
are random secrets bound to (user, session row); only their SHA-256 is stored. External tokens
are checked against the IdP's published keys, with the algorithm taken from an allow-list
(never "none"), and the configured issuer and audience.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jose import jwk, jwt
from jose.exceptions import JOSEError

from app.config import Settings
from app.db.base import new_id
from app.errors import ServiceUnavailable, Unauthorized

REFRESH_PREFIX = "wrt_"
_REQUIRED = ("iss", "aud", "exp", "iat", "jti", "sub", "sid")


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    family_id: uuid.UUID
    jti: str
    expires_at: int


def _signing_key(settings: Settings) -> str:
    if settings.jwt_algorithm == "HS256":
        return settings.jwt_secret.get_secret_value()
    if settings.jwt_private_key is None:
        raise ServiceUnavailable("This instance only verifies tokens; it has no signing key")
    return settings.jwt_private_key.get_secret_value()


@lru_cache(maxsize=4)
def _public_from_private(private_pem: str, algorithm: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _verify_key(settings: Settings) -> str:
    if settings.jwt_algorithm == "HS256":
        return settings.jwt_secret.get_secret_value()
    if settings.jwt_public_key:
        return settings.jwt_public_key
    assert settings.jwt_private_key is not None
    return _public_from_private(settings.jwt_private_key.get_secret_value(), settings.jwt_algorithm)


def issue_access_token(
    settings: Settings, user_id: uuid.UUID, family_id: uuid.UUID, now: int | None = None
) -> tuple[str, int]:
    issued = int(now if now is not None else time.time())
    ttl = settings.access_token_ttl_seconds
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "sid": str(family_id),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": str(new_id()),
        "typ": "access",
    }
    headers = {"kid": settings.jwt_key_id} if settings.jwt_algorithm != "HS256" else None
    token = jwt.encode(
        claims, _signing_key(settings), algorithm=settings.jwt_algorithm, headers=headers
    )
    return token, ttl


# Verified tokens, by (token, verification settings): a token's signature and fixed claims
# verify the same way every time, so each is checked once; the time claims are checked again on
# every use. Only tokens that passed verification are kept (a flood of forged ones adds nothing).
_VERIFIED: OrderedDict[tuple[str, ...], tuple[AccessClaims, int]] = OrderedDict()
VERIFIED_CACHE_SIZE = 10_000


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """The claims of a valid access token, else `Unauthorized` (one answer for every failure)."""
    if not token or len(token) > 4096:
        raise Unauthorized()
    key = (
        token,
        settings.jwt_algorithm,
        _verify_key(settings),
        settings.jwt_issuer,
        settings.jwt_audience,
    )
    hit = _VERIFIED.get(key)
    if hit is not None:
        claims, not_before = hit
        now = time.time()
        if not_before <= now < claims.expires_at:
            _VERIFIED.move_to_end(key)
            return claims
        del _VERIFIED[key]
        raise Unauthorized()
    claims, not_before = _verify(settings, token)
    _VERIFIED[key] = (claims, not_before)
    if len(_VERIFIED) > VERIFIED_CACHE_SIZE:
        _VERIFIED.popitem(last=False)
    return claims


def _verify(settings: Settings, token: str) -> tuple[AccessClaims, int]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _verify_key(settings),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require_" + c: True for c in ("exp", "iat", "aud", "iss", "jti", "sub")},
        )
    except (JOSEError, ValueError, TypeError):
        raise Unauthorized() from None
    if any(c not in claims for c in _REQUIRED) or claims.get("typ") != "access":
        raise Unauthorized()
    try:
        access = AccessClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            family_id=uuid.UUID(str(claims["sid"])),
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )
        return access, int(claims.get("nbf", claims["iat"]))
    except (ValueError, TypeError):
        raise Unauthorized() from None


def issue_mfa_token(settings: Settings, user_id: uuid.UUID) -> str:
    """A short-lived token that proves the password step of a login, for the MFA step only."""
    issued = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "iat": issued,
        "nbf": issued,
        "exp": issued + settings.mfa_token_ttl_seconds,
        "jti": str(new_id()),
        "typ": "mfa",
    }
    headers = {"kid": settings.jwt_key_id} if settings.jwt_algorithm != "HS256" else None
    return str(
        jwt.encode(
            claims, _signing_key(settings), algorithm=settings.jwt_algorithm, headers=headers
        )
    )


def decode_mfa_token(settings: Settings, token: str) -> tuple[uuid.UUID, str]:
    """(user id, token id) of a valid MFA token, else `Unauthorized`."""
    invalid = Unauthorized("Invalid or expired MFA token; log in again")
    if not token or len(token) > 4096:
        raise invalid
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _verify_key(settings),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require_" + c: True for c in ("exp", "iat", "aud", "iss", "jti", "sub")},
        )
        if claims.get("typ") != "mfa":
            raise invalid
        return uuid.UUID(str(claims["sub"])), str(claims["jti"])
    except (JOSEError, ValueError, TypeError, KeyError):
        raise invalid from None


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A JWT's header and claims, NOT verified (to route it to its verifier), or None."""
    if not token or len(token) > 16384 or token.count(".") != 2:
        return None
    try:
        return jwt.get_unverified_header(token), jwt.get_unverified_claims(token)
    except (JOSEError, ValueError, TypeError):
        return None


class UnknownSigningKey(Unauthorized):
    """The token names a key the published set does not hold (yet: the IdP may have rotated)."""


def verify_external(
    token: str,
    keys: list[dict[str, Any]],
    *,
    algorithms: list[str],
    issuer: str,
    audience: str,
    leeway: int,
) -> dict[str, Any]:
    """The claims of an IdP-signed token, checked against its published `keys` (a JWKS's
    `keys`), issuer, audience and time claims; else `Unauthorized`."""
    peeked = peek(token)
    if peeked is None:
        raise Unauthorized()
    header = peeked[0]
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in algorithms:  # "none" and HMAC with a public key never get this far
        raise Unauthorized()
    candidates = [
        k for k in keys if (kid is None or k.get("kid") == kid) and k.get("use", "sig") == "sig"
    ]
    if not candidates:
        raise UnknownSigningKey()
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                options={
                    "leeway": leeway,
                    **{"require_" + c: True for c in ("exp", "iat", "aud", "iss", "sub")},
                },
            )
            return claims
        except (JOSEError, ValueError, TypeError):
            continue
    raise Unauthorized()


def jwks(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """The public keys (empty for HS256, whose key must never be published)."""
    if settings.jwt_algorithm == "HS256":
        return {"keys": []}
    key = jwk.construct(_verify_key(settings), settings.jwt_algorithm).to_dict()
    key.update({"kid": settings.jwt_key_id, "use": "sig", "alg": settings.jwt_algorithm})
    return {"keys": [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in key.items()}]}


# Refresh tokens: "wrt_" + base64url(user_id[16] | session_id[16] | secret[32]).


@dataclass(frozen=True)
class RefreshToken:
    user_id: uuid.UUID
    session_id: uuid.UUID
    secret: bytes

    def encode(self) -> str:
        raw = self.user_id.bytes + self.session_id.bytes + self.secret
        return REFRESH_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.secret).digest()


def new_refresh_token(user_id: uuid.UUID) -> RefreshToken:
    return RefreshToken(user_id=user_id, session_id=new_id(), secret=secrets.token_bytes(32))


def parse_refresh_token(token: str) -> RefreshToken:
    if not token.startswith(REFRESH_PREFIX) or len(token) > 200:
        raise Unauthorized("Invalid refresh token")
    body = token[len(REFRESH_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        raise Unauthorized("Invalid refresh token") from None
    if len(raw) != 64:
        raise Unauthorized("Invalid refresh token")
    return RefreshToken(uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:32]), raw[32:])


def digests_match(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
