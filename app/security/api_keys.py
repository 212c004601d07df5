"""API keys: their format, their stored form, and the limits a key puts on its user.

Invariant: a key is `wdn_<prefix>_<secret>`; only the prefix (to find it) and a keyed hash of
the secret (to check it, in constant time) are stored, so neither the database nor the audit
log can give a working key back. A key acts as its user narrowed by `KeyLimits`: its workspace
(when bound), the intersection of its permissions with the user's, and its permitted endpoints;
and never with the permissions that manage access (`KEY_NEVER`).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.config import Settings
from app.errors import Unauthorized
from app.security import keyring

SCHEME = "wdn"
PURPOSE = "api-key"
PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
PREFIX_LENGTH = 12
SECRET_BYTES = 32
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*")
KEY_RE = re.compile(rf"{SCHEME}_([{PREFIX_ALPHABET}]{{{PREFIX_LENGTH}}})_([A-Za-z0-9_-]{{43}})")

# Managing who has access (members, roles, group mappings, service keys) takes a person.
KEY_NEVER = frozenset({"member.manage", "role.manage"})


@dataclass(frozen=True)
class PresentedKey:
    """A key as the caller sent it (not yet checked)."""

    prefix: str
    secret: str

    def digest(self, settings: Settings) -> bytes:
        return keyring.keyed_hash(settings, PURPOSE, self.secret)


def looks_like_key(value: str) -> bool:
    return value.startswith(SCHEME + "_")


def parse_key(value: str) -> PresentedKey:
    match = KEY_RE.fullmatch(value.strip())
    if match is None:
        raise Unauthorized("Invalid API key")
    return PresentedKey(match.group(1), match.group(2))


def new_key(settings: Settings) -> tuple[str, str, bytes]:
    """(full key to show once, prefix, hash to store)."""
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{SCHEME}_{prefix}_{secret}", prefix, keyring.keyed_hash(settings, PURPOSE, secret)


@lru_cache(maxsize=1024)
def _pattern(path: str) -> re.Pattern[str]:
    return re.compile(path)


def compile_path(path: str) -> re.Pattern[str]:
    """A permitted endpoint's path regex (ValueError when it is not one)."""
    try:
        return _pattern(path)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None


@dataclass(frozen=True)
class Endpoint:
    method: str  # exact, or "*"
    path: str  # a regular expression over the whole request path

    def permits(self, method: str, path: str) -> bool:
        if self.method != "*" and self.method != method.upper():
            return False
        return _pattern(self.path).fullmatch(path) is not None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class KeyLimits:
    """What narrows a key's user: read fresh with the key on every request."""

    key_id: uuid.UUID
    kind: str  # "personal" or "service"
    prefix: str
    owner_id: uuid.UUID  # the user (personal) or the workspace (service) that owns the row
    workspace_id: uuid.UUID | None = None  # bound to this workspace
    permissions: frozenset[str] | None = None  # None: whatever the user holds
    endpoints: tuple[Endpoint, ...] | None = None  # None: any endpoint

    @classmethod
    def from_row(cls, row: Mapping[str, Any], prefix: str) -> KeyLimits:
        endpoints = row["permitted_endpoints"]
        permissions = row["key_permissions"]
        kind = row["key_kind"]
        return cls(
            key_id=row["key_id"],
            kind=kind,
            prefix=prefix,
            owner_id=row["user_id"] if kind == "personal" else row["key_workspace_id"],
            workspace_id=row["key_workspace_id"],
            permissions=None if permissions is None else frozenset(permissions),
            endpoints=None if endpoints is None else endpoints_from(endpoints),
        )

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def narrow(self, permissions: frozenset[str]) -> frozenset[str]:
        held = permissions if self.permissions is None else permissions & self.permissions
        return held - KEY_NEVER

    def why_not(self, permission: str) -> str | None:
        """Why the key withholds `permission` from its user (None when it does not)."""
        if permission in KEY_NEVER:
            return f"API keys never hold '{permission}'"
        if self.permissions is not None and permission not in self.permissions:
            listed = ", ".join(sorted(self.permissions)) or "none"
            return f"this API key's permissions do not include it (the key has: {listed})"
        return None

    def permits(self, method: str, path: str) -> bool:
        return self.endpoints is None or any(e.permits(method, path) for e in self.endpoints)

    def endpoint_refusal(self, method: str, path: str) -> str:
        assert self.endpoints is not None
        allowed = "; ".join(str(e) for e in self.endpoints) or "nothing"
        return f"This API key may not call {method} {path}; its permitted endpoints: {allowed}"


def endpoints_from(items: Sequence[Mapping[str, Any]]) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(str(e["method"]).upper(), str(e["path"])) for e in items)
