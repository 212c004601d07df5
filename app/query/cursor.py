"""Opaque, signed page cursors.

A cursor names the list it belongs to (resource and sort) and carries the last row's sort-key
values plus its id. It is base64url JSON with a truncated HMAC, so a cursor edited by hand, cut
short or taken from another list (or another sort) is refused with 400 instead of silently
paging from somewhere else. The key is derived from the installation's JWT secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from app.errors import BadRequest

SIGNATURE_BYTES = 12
MAX_CURSOR = 4096
INVALID = "cursor is not valid for this list; use the next_cursor the list returned"


def cursor_key(secret: str) -> bytes:
    return hashlib.sha256(b"warden-cursor\x00" + secret.encode()).digest()


def encode(key: bytes, scope: str, values: list[Any]) -> str:
    payload = orjson.dumps([scope, values])
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(signature + payload).decode().rstrip("=")


def decode(key: bytes, scope: str, cursor: str) -> list[Any]:
    """The values of a cursor minted by `encode` for the same `scope` (else 400)."""
    if len(cursor) > MAX_CURSOR:
        raise BadRequest(INVALID)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise BadRequest(INVALID) from None
    signature, payload = raw[:SIGNATURE_BYTES], raw[SIGNATURE_BYTES:]
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]
    if not hmac.compare_digest(signature, expected):
        raise BadRequest(INVALID)
    try:
        found_scope, values = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        raise BadRequest(INVALID) from None
    if found_scope != scope or not isinstance(values, list):
        raise BadRequest(INVALID)
    return values
