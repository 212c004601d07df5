"""Keys derived from the installation's secret: keyed hashes (API keys, recovery codes) and
authenticated encryption (TOTP secrets at rest).

Invariant: every use has its own subkey (HMAC of the master secret with the purpose), so a
value hashed or encrypted for one purpose is worthless for another. The master is
`WARDEN_SECRET_KEY`, else `WARDEN_JWT_SECRET`; changing it invalidates what was derived.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import Settings

NONCE_BYTES = 12


def _master(settings: Settings) -> bytes:
    secret = settings.secret_key or settings.jwt_secret
    return secret.get_secret_value().encode()


@lru_cache(maxsize=32)
def _subkey(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, b"warden:" + purpose.encode(), hashlib.sha256).digest()


def keyed_hash(settings: Settings, purpose: str, value: str) -> bytes:
    """HMAC-SHA256 of `value` under the purpose's subkey (for high-entropy secrets: no slow
    hash is needed, and without the subkey a stolen hash cannot be checked offline)."""
    return hmac.new(_subkey(_master(settings), purpose), value.encode(), hashlib.sha256).digest()


def same(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(a, b)


def encrypt(settings: Settings, purpose: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(_subkey(_master(settings), purpose)).encrypt(
        nonce, plaintext, purpose.encode()
    )


def decrypt(settings: Settings, purpose: str, sealed: bytes) -> bytes | None:
    """The plaintext, or None when `sealed` was not made with this installation's key."""
    try:
        return AESGCM(_subkey(_master(settings), purpose)).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], purpose.encode()
        )
    except (InvalidTag, ValueError):
        return None
