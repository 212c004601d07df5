"""`Idempotency-Key` on POST routes: a retried request gets the first one's response instead of
doing the work twice.

Invariant: the key is claimed (a row inserted) in the request's own transaction, after
authentication and the permission check, and the response is stored in that same transaction
before it commits; so a key is taken exactly when the request's effects are committed, and a
request that failed (any non-2xx, a broken COMMIT) left neither. A retry with the same key, by
the same user in the same workspace (the row's policy and the statements' explicit filter), on
the same method, path and body, is answered with the stored status, headers and body
(`Idempotent-Replayed: true`) for `idempotency_ttl_seconds`. The same key with another request
is refused (422); a retry that arrives while the first is still running waits for it (up to
`idempotency_wait_seconds`, then 409). Routes that run as the caller (a workspace route past
its permission check, or the caller's own routes) take part; routes whose answer holds a
secret (a field the audit log would redact, or recovery codes) or that declare
`openapi_extra={"x-idempotency": False}` refuse the header: a secret is shown once, never
stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.responses import Response

from app.db.transaction import Transaction
from app.errors import AppError, BadRequest

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
STATE = "idempotency"  # request.state attribute holding the claim
OPT_OUT = "x-idempotency"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, like the header examples
STORED_HEADERS = ("content-type", "content-location", "location")
FILE_READ = 1 << 20

PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": (
        "Makes the request safe to retry: the first successful response is stored for 24 h and "
        "returned (with `Idempotent-Replayed: true`) for a retry with the same key, method, "
        "path and body by the same user in the same workspace, without doing the work again. "
        "The same key with a different request: 422; while the first is still running: 409."
    ),
}


class KeyReused(AppError):
    """The key was used for another request: a validation error of the header (so the answer
    has the shape of every other 422, with `errors`)."""

    status, title, slug = 422, "Idempotency key reused", "idempotency-key-reused"

    def __init__(self) -> None:
        detail = f"This {HEADER} was already used for a different request"
        error = {"loc": ["header", HEADER], "msg": detail, "type": "idempotency_key_reused"}
        super().__init__(detail, errors=[error])


class KeyInUse(AppError):
    status, title, slug = 409, "Idempotency key in use", "idempotency-key-in-use"


class Replay(Exception):  # noqa: N818 - not an error: the stored answer to a retry
    """Answer the request with a stored response (raised before the handler runs)."""

    def __init__(self, response: Response) -> None:
        super().__init__("replay")
        self.response = response


@dataclass(frozen=True)
class Claim:
    user_id: uuid.UUID
    workspace_id: uuid.UUID | None
    key: str

    @property
    def table(self) -> _Table:
        return USER_KEYS if self.workspace_id is None else WORKSPACE_KEYS

    def values(self) -> list[Any]:
        """The values of the table's key columns, in order."""
        head = [] if self.workspace_id is None else [self.workspace_id]
        return [*head, self.user_id, self.key]


@dataclass(frozen=True)
class _Table:
    """The statements on one key table; its key columns are the first parameters of each."""

    name: str
    key: tuple[str, ...]

    def _where(self) -> str:
        return " AND ".join(f"{c} = ${n}" for n, c in enumerate(self.key, 1))

    @cached_property
    def insert(self) -> str:
        n = len(self.key)
        columns = ", ".join(
            (*self.key, "fingerprint", "method", "path", "created_at", "expires_at")
        )
        keys = ", ".join(f"${i}" for i in range(1, n + 1))
        # The clock is read in VALUES only: Citus refuses non-immutable functions in DO UPDATE.
        return (
            f"INSERT INTO {self.name} ({columns}) VALUES ({keys}, ${n + 1}, ${n + 2}, ${n + 3}, "
            f"now(), now() + make_interval(secs => ${n + 4})) "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET "
            "fingerprint = EXCLUDED.fingerprint, method = EXCLUDED.method, path = EXCLUDED.path, "
            "status = NULL, headers = NULL, body = NULL, created_at = EXCLUDED.created_at, "
            f"expires_at = EXCLUDED.expires_at "
            f"WHERE {self.name}.expires_at <= EXCLUDED.created_at RETURNING 1"
        )

    @cached_property
    def select(self) -> str:
        return f"SELECT fingerprint, status, headers, body FROM {self.name} WHERE {self._where()}"

    @cached_property
    def update(self) -> str:
        n = len(self.key)
        return (
            f"UPDATE {self.name} SET status = ${n + 1}, headers = ${n + 2}, body = ${n + 3} "
            f"WHERE {self._where()}"
        )


# The explicit key filter is the application's scoping; the tables' policies are the other layer.
WORKSPACE_KEYS = _Table("idempotency_key", ("workspace_id", "user_id", "key"))
USER_KEYS = _Table("user_idempotency_key", ("user_id", "key"))


async def claim(
    request: Request, tx: Transaction, user_id: uuid.UUID, workspace_id: uuid.UUID | None
) -> None:
    """Take the request's key for it, or raise `Replay` with the stored response (or 422 / 409
    / 400); a no-op without the header or on another method than POST."""
    if request.method != "POST":
        return
    key = request.headers.get(HEADER)
    if key is None:
        return
    if not _KEY.fullmatch(key):
        raise BadRequest(f"{HEADER} must be 1 to 255 visible ASCII characters")
    route = request.scope.get("route")
    if (getattr(route, "openapi_extra", None) or {}).get(OPT_OUT) is False:
        raise BadRequest(f"This operation does not take an {HEADER}: its answer is shown once")
    settings = request.app.state.settings
    fingerprint = await _fingerprint(request, route)
    claimed = Claim(user_id, workspace_id, key)
    table = claimed.table
    wait_ms = max(1, int(settings.idempotency_wait_seconds * 1000))  # 0 would mean forever
    await tx.execute(f"SET LOCAL lock_timeout = {wait_ms}")
    try:
        # A concurrent request holding the same key makes this wait until it ends: committed,
        # it is replayed below; rolled back, this one takes the key. An expired key is reused.
        taken = await tx.fetch(
            table.insert,
            *claimed.values(),
            fingerprint,
            request.method,
            request.scope["path"],
            settings.idempotency_ttl_seconds,
        )
    except asyncpg.LockNotAvailableError:
        raise KeyInUse(
            f"A request with this {HEADER} is still being processed; retry later",
            headers={"Retry-After": "1"},
        ) from None
    await tx.execute("SET LOCAL lock_timeout TO DEFAULT")
    if taken:
        setattr(request.state, STATE, claimed)
        return
    stored = (await tx.fetch(table.select, *claimed.values()))[0]
    if stored["fingerprint"] != fingerprint or stored["status"] is None:
        raise KeyReused()
    headers = dict(stored["headers"] or {})  # jsonb arrives decoded
    headers[REPLAYED] = "true"
    raise Replay(Response(stored["body"] or b"", status_code=stored["status"], headers=headers))


async def store(request: Request, tx: Transaction, response: Response | None) -> None:
    """Keep the response of a request that claimed a key, in its transaction (before COMMIT)."""
    claimed: Claim | None = request.scope.get("state", {}).get(STATE)
    if claimed is None:  # the common case, answered without building `request.state`
        return
    status, body, headers = 200, b"", {}
    if response is not None:
        status = response.status_code
        body = bytes(getattr(response, "body", b"") or b"")
        headers = {h: response.headers[h] for h in STORED_HEADERS if h in response.headers}
    await tx.execute(
        claimed.table.update, *claimed.values(), status, orjson.dumps(headers).decode(), body
    )


async def _fingerprint(request: Request, route: Any) -> bytes:
    """What makes two requests the same: method, path, query and the body as parsed (JSON with
    sorted keys; form fields and uploaded files by content), so a retry's different multipart
    boundary or key order does not make it a different request."""
    digest = hashlib.sha256()
    for part in (request.method, request.scope["path"]):
        digest.update(_bytes(part) + b"\0")
    digest.update(request.scope.get("query_string", b"") + b"\0")
    if getattr(route, "body_field", None) is None:
        return digest.digest()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        # The standard encoder: any JSON the request could carry (integers beyond 64 bits,
        # lone surrogates escaped), keys sorted.
        canonical = json.dumps(await request.json(), sort_keys=True, separators=(",", ":"))
        digest.update(canonical.encode())
    elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        for name, value in sorted(form.multi_items(), key=lambda item: item[0]):
            digest.update(_bytes(name) + b"\0")
            if isinstance(value, UploadFile):
                digest.update(_bytes(value.filename or "") + b"\0")
                while chunk := await value.read(FILE_READ):
                    digest.update(chunk)
                await value.seek(0)
            else:
                digest.update(_bytes(value))
            digest.update(b"\0")
    else:
        digest.update(await request.body())
    return digest.digest()


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def takes_part(route: APIRoute) -> bool:
    """A POST route whose dependencies claim keys, and that did not opt out."""
    if "POST" not in (route.methods or ()) or (route.openapi_extra or {}).get(OPT_OUT) is False:
        return False
    return _takes_part(route.dependant)


def document(route: APIRoute, *, shows_secrets: bool = False) -> None:
    """Declare the header on a POST route that takes part. A route whose answer carries a
    secret (a key, a token, recovery codes: shown once, never stored) takes no part, as if it
    had declared so."""
    if shows_secrets and "POST" in (route.methods or ()):
        route.openapi_extra = {**(route.openapi_extra or {}), OPT_OUT: False}
    if not takes_part(route):
        return
    extra = dict(route.openapi_extra or {})
    extra["parameters"] = [*extra.get("parameters", []), PARAMETER]
    route.openapi_extra = extra


def _takes_part(dependant: Any) -> bool:
    if getattr(dependant.call, "claims_idempotency_keys", False):
        return True
    return any(_takes_part(d) for d in dependant.dependencies)


def install(app: FastAPI) -> None:
    async def replay(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Replay)
        return exc.response

    app.add_exception_handler(Replay, replay)
