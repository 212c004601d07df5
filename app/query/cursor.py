"""Opaque, sealed page cursors.

A cursor names the list it belongs to (resource and sort), the workspace it was made in, and
carries the last row's sort-key values. It is encrypted and authenticated (AES-GCM under a key
of its own derived from the installation's secret), so a cursor reveals nothing of the row it
points after (a value the response masked stays hidden), and one edited by hand, cut short or
taken from another list, sort or workspace is refused with 400 instead of silently paging from
somewhere else.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from app.config import Settings
from app.errors import BadRequest
from app.security import keyring

MAX_CURSOR = 4096
INVALID = "cursor is not valid for this list; use the next_cursor the list returned"
PURPOSE = "cursor"


@dataclass(frozen=True)
class CursorKey:
    """The installation's cursor key, bound to one workspace (or to none)."""

    settings: Settings
    workspace: str


def cursor_key(settings: Settings, workspace: str | None) -> CursorKey:
    return CursorKey(settings, workspace or "")


def encode(key: CursorKey, scope: str, values: list[Any]) -> str:
    payload = orjson.dumps([key.workspace, scope, values])
    sealed = keyring.encrypt(key.settings, PURPOSE, payload)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def decode(key: CursorKey, scope: str, cursor: str) -> list[Any]:
    """The values of a cursor minted by `encode` for the same workspace and `scope` (else
    400)."""
    if len(cursor) > MAX_CURSOR:
        raise BadRequest(INVALID)
    try:
        sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise BadRequest(INVALID) from None
    payload = keyring.decrypt(key.settings, PURPOSE, sealed)
    if payload is None:
        raise BadRequest(INVALID)
    try:
        workspace, found_scope, values = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        raise BadRequest(INVALID) from None
    if workspace != key.workspace or found_scope != scope or not isinstance(values, list):
        raise BadRequest(INVALID)
    return values
