"""The audit hook's request side: what a call was, who made it, what it carried.

Invariant: handlers know nothing about auditing. What a call was is read from the matched route
(`describe_route`): the action from the handler's verb (`list_providers` → list, `add_member` →
create, `approve_change` → approve) unless the route declares `openapi_extra={"x-audit-action":
...}`; the resource type from the path's collection segment (`provider-groups` →
provider_group); the resource id from the path parameter that follows it, or for a create from
the `id` of the response. `AuditedRoute` keeps the finished response in the request scope: the
session dependency's exit runs after serialization and before sending, so it can record status,
new ids and the resource's state in the same transaction.

Secrets never reach the log: values under keys naming a password, token, secret, API key,
credential, authorization or one-time code are replaced (at any depth), multipart bodies are
not stored at all, oversized values are replaced by their size, and strings PostgreSQL cannot
store are cleaned.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, get_args

import orjson
from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.routing import APIRoute

from app.security import idempotency
from app.security.shaping import shaping_endpoint

RESPONSE_KEY = "warden.response"
REDACTED = "[redacted]"
MAX_STORED = 16_384  # bytes of JSON per stored value (body, state, params)

VERB_ALIASES = {"add": "create", "remove": "delete"}
RESOURCE_ALIASES = {"settings": "workspace"}
LIST_ACTIONS = frozenset({"list", "search", "distinct"})
STATE_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SENSITIVE = re.compile(
    r"password|passwd|passphrase|^pass$|secret|token|api_?key|private_?key|credential|"
    r"authori[sz]ation|^key$|cookie|^(recovery_)?codes?$|otpauth",
    re.IGNORECASE,
)


class AuditedRoute(APIRoute):
    """The API route class: it leaves the response in `request.scope[RESPONSE_KEY]` for the
    audit hook, and answers with the response model shaped by the caller's field rules."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        model = kwargs.get("response_model", DefaultPlaceholder(None))
        if isinstance(model, DefaultPlaceholder):
            model = get_typed_return_annotation(endpoint)  # FastAPI's own inference
        if model is not None and not (isinstance(model, type) and issubclass(model, Response)):
            resource = _describe(path, endpoint.__name__, None).resource_type or "audit"
            endpoint = shaping_endpoint(endpoint, model, kwargs.get("status_code"), resource)
        super().__init__(path, endpoint, **kwargs)
        idempotency.document(self, shows_secrets=_shows_secrets(model))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def audited(request: Request) -> Response:
            response = await handler(request)
            request.scope[RESPONSE_KEY] = response
            return response

        return audited


def _shows_secrets(model: Any) -> bool:
    """The response model (or one of a union's) has a field whose value is a secret: one the
    audit log would redact, or recovery codes."""
    models = get_args(model) or (model,)
    for each in models:
        fields = getattr(each, "model_fields", None) or {}
        if any(_secret_key(name) or "recovery" in name for name in fields):
            return True
    return False


@dataclass(frozen=True)
class RouteAudit:
    action: str
    resource_type: str | None  # None: the route's `resource_type` path parameter names it
    id_param: str | None


@lru_cache(maxsize=1024)
def _describe(path: str, endpoint_name: str, declared_action: str | None) -> RouteAudit:
    segments = [s for s in path.split("/") if s]
    rest = segments[segments.index("v1") + 1 :] if "v1" in segments else segments
    collection = rest[0] if rest else ""
    resource_type: str | None = RESOURCE_ALIASES.get(
        collection, collection.replace("-", "_").removesuffix("s")
    )
    id_param = None
    if "{resource_type}" in rest:
        resource_type = None
    if "{resource_id}" in rest:
        id_param = "resource_id"
    elif len(rest) > 1 and rest[1].startswith("{"):
        id_param = rest[1].strip("{}")
    verb = endpoint_name.split("_", 1)[0]
    action = declared_action or VERB_ALIASES.get(verb, verb)
    return RouteAudit(action, resource_type, id_param)


def describe_route(route: Any) -> RouteAudit:
    """Action, resource type and id parameter of a workspace route (cached per route)."""
    extra = getattr(route, "openapi_extra", None) or {}
    return _describe(route.path, route.endpoint.__name__, extra.get("x-audit-action"))


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON value with secrets replaced and strings made storable."""
    if depth > 20:
        return REDACTED
    if isinstance(value, dict):
        return {
            _clean(str(k)): REDACTED if _secret_key(str(k)) else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return _clean(value)
    return value


def _secret_key(key: str) -> bool:
    return bool(_SENSITIVE.search(key)) and not key.lower().endswith(("_id", "_ids"))


def _clean(text: str) -> str:
    """PostgreSQL stores neither NUL nor lone surrogates."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _bounded(value: Any) -> Any:
    if value is None:
        return None
    size = len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    return value if size <= MAX_STORED else {"_omitted": "too large", "bytes": size}


def _params(items: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in items:
        out.setdefault(k, []).append(v)
    return redact({k: v[0] if len(v) == 1 else v for k, v in out.items()})


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _json(response: Response | None) -> Any:
    if response is None or not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        return None
    try:
        return orjson.loads(response.body)
    except (orjson.JSONDecodeError, AttributeError):
        return None


async def _body(request: Request, route: Any) -> Any:
    """The request's JSON body (already parsed by FastAPI, so no second read), redacted."""
    if getattr(route, "body_field", None) is None:
        return None
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        return None  # forms carry credentials; multipart carries uploads
    try:
        return redact(await request.json())
    except ValueError:
        return None


def request_path(scope: Any) -> str:
    """The request's path as `request.url.path` spells it, without building the URL; the value
    of a path parameter that names a secret (an invitation's token) is replaced."""
    path = str(scope["path"])
    for name, value in (scope.get("path_params") or {}).items():
        if _secret_key(str(name)) and value:
            path = path.replace(str(value), REDACTED)
    return path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def client_fields(request: Request) -> dict[str, Any]:
    """From where: source IP, user agent, request id."""
    return {
        "source_ip": _clean(request.client.host)[:64] if request.client else None,
        "user_agent": _clean(request.headers.get("user-agent", ""))[:400] or None,
        "request_id": getattr(request.state, "request_id", None),
    }


async def call_values(request: Request, *, user_route: bool = False) -> dict[str, Any]:
    """The columns of the current (successful) call's record: action, method, path, params,
    body, resource, status, client; for workspace writes also `state`, the resource as the
    response showed it (history is the difference between consecutive states)."""
    route = request.scope["route"]
    response: Response | None = request.scope.get(RESPONSE_KEY)
    info = describe_route(route)
    path_params = redact(dict(request.path_params))
    resource_type = info.resource_type or _clean(str(path_params.get("resource_type", "")))[:64]
    resource_id = _uuid(path_params.get(info.id_param)) if info.id_param else None
    writes = request.method in STATE_METHODS and not user_route
    payload = None
    if info.action not in LIST_ACTIONS and (resource_id is None or writes):
        payload = _json(response)
        if resource_id is None and isinstance(payload, dict):
            # A 202 answers with the task working on the resource: record the resource.
            accepted = response is not None and response.status_code == 202
            key = "resource_id" if accepted and payload.get("resource_id") else "id"
            resource_id = _uuid(payload.get(key, payload.get("user_id")))
    values = {
        "action": route.endpoint.__name__ if user_route else info.action,
        "method": request.method,
        "path": _clean(request_path(request.scope)),
        "path_params": path_params,
        "query_params": _bounded(_params(request.query_params.multi_items())),
        "body": _bounded(await _body(request, route)),
        "resource_type": resource_type or None,
        "resource_id": resource_id,
        "status": response.status_code if response is not None else 200,
        "api_key_id": getattr(getattr(request.state, "principal", None), "api_key_id", None),
        **client_fields(request),
    }
    if not user_route:
        state = payload if writes and isinstance(payload, dict) else None
        values["state"] = _bounded(redact(state))
    return values
