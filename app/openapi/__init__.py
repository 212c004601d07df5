"""The OpenAPI document, derived from the routes' own declarations.

Nothing here is written per route: operation ids and model names follow the routes' paths and
handlers (`names`); every operation documents the problems its dependencies can answer (401
from the credentials, 404 from the workspace, 403 from `require(...)`, 400 from the query
language, 422 from its parameters, 413 for a body, 409 for a workspace write, 503 where
the database is used) plus those its route declares in `responses=`, all as
`application/problem+json`; list routes get their `Resource`'s filters as typed query
parameters (`query`), and output models their `Resource`'s enums; `X-Request-ID`,
`Content-Location` and `Retry-After` are declared where they are sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute

from app.openapi import examples, names, problems, query
from app.openapi.problems import CONTENT_LOCATION, REQUEST_ID
from app.query import Resource
from app.query.types import Enum
from app.schemas.common import Output
from app.security import deps, idempotency
from app.security.fields import FIELD_RULES
from app.security.route_index import annotate_openapi

TAGS: list[dict[str, str]] = [
    {"name": "auth", "description": "Register, log in (tokens), refresh, log out, password."},
    {"name": "me", "description": "The caller: memberships, effective permissions, own logs."},
    {
        "name": "api keys",
        "description": "Personal API keys, narrowed to a workspace, permissions and endpoints.",
    },
    {"name": "mfa", "description": "The TOTP second factor: enrol, confirm, recovery codes."},
    {"name": "workspaces", "description": "Create, list and delete workspaces."},
    {"name": "members", "description": "Who belongs to a workspace, with which role."},
    {"name": "service keys", "description": "Workspace-owned API keys for services."},
    {"name": "idp groups", "description": "Identity-provider groups mapped to workspace roles."},
    {"name": "invitations", "description": "Invite someone by email with a role; accept."},
    {"name": "roles", "description": "Custom roles: a built-in role plus grants and revokes."},
    {"name": "providers", "description": "Cloud accounts, validated per type; soft delete."},
    {"name": "provider groups", "description": "Groups of providers; role visibility."},
    {"name": "scans", "description": "Upload a JSON-OCSF report; imported in the background."},
    {"name": "findings", "description": "Imported findings, filtered by the query language."},
    {"name": "tasks", "description": "Background tasks: what a `202 Accepted` points at."},
    {"name": "changes", "description": "Change requests, their approvals (separation of duties)."},
    {"name": "incidents", "description": "Incidents: status, severity, assignee, timeline."},
    {"name": "settings", "description": "Workspace name and audit retention."},
    {"name": "audit", "description": "The audit log, its hash chain, resource history."},
    {"name": "permissions", "description": "The permission registry and built-in roles."},
    {"name": "platform", "description": "Installation-level, read-only views (platform admins)."},
    {"name": "operations", "description": "Probes and the public keys for access tokens."},
]

# What the dependencies themselves can answer (besides `require(...)`: 403, and a list's
# `Resource`: 400). A dependency may also carry `problem_statuses`.
DEPENDENCY_STATUSES: dict[Any, tuple[int, ...]] = {
    deps.get_credential: (401,),
    # 403: an API key's limits (endpoints, bound workspace), a workspace requiring MFA
    deps.get_workspace_session: (403, 404, 503),
    deps.get_user_session: (403, 503),
}
BODY_UNREADABLE = "The body could not be read (e.g. not UTF-8), or a value is not acceptable"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def install(app: FastAPI) -> None:
    """Serve the derived document at `/openapi.json` (built once, on first use)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = derive(app, generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route


def _enum_refs(components: dict[str, Any]) -> query.EnumRef:
    """Enum fields as named components (`FindingSeverity`), one per set of values: filters and
    the models that show the field share it (an existing component with the same values, such
    as `ProviderType`, is reused)."""

    def enum_ref(resource: Resource, name: str, ftype: Enum) -> dict[str, Any]:
        values = list(ftype.values)
        for key, component in components.items():
            if component.get("enum") == values:
                return {"$ref": f"#/components/schemas/{key}"}
        key = names.camel(resource.name) + names.camel(name)
        components[key] = {"title": key, "type": "string", "enum": values}
        return {"$ref": f"#/components/schemas/{key}"}

    return enum_ref


def derive(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    annotate_openapi(app, schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    enum_ref = _enum_refs(components)
    for name in problems.REPLACED:
        components.pop(name, None)
    components.update(problems.SCHEMAS)
    page_max = app.state.settings.max_page_size
    bodies: dict[str, str] = {}
    for route in api_routes(app):
        for method in sorted(route.methods or ()):
            operation = schema["paths"][route.path][method.lower()]
            _operation(route, method, operation, page_max, enum_ref)
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref_name = content.get("schema", {}).get("$ref", "").rpartition("/")[2]
                if ref_name.startswith("Body_"):
                    bodies[ref_name] = operation["operationId"]
    names.rename_components(schema, names.model_renames(schema, bodies))
    for route in api_routes(app):
        found = query.query_dependency(route.dependant)
        if found is not None:
            _output_enums(schema, route, found[0], enum_ref)
    _hideable_fields(components)
    _binary_uploads(components)
    examples.apply(components)
    return schema


def _operation(
    route: APIRoute,
    method: str,
    operation: dict[str, Any],
    page_max: int,
    enum_ref: query.EnumRef,
) -> None:
    operation["operationId"] = names.operation_id(route, method)
    if route.tags:
        operation["tags"] = [route.tags[-1]]
    found = query.query_dependency(route.dependant)
    if found is not None:
        path_names = set(route.param_convertors)
        query.apply(operation, found[0], found[1], path_names, page_max, enum_ref)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    for status, description in error_statuses(route, method).items():
        responses[str(status)] = problems.response(status, description)
    for code, response in responses.items():
        for content in response.get("content", {}).values():
            # FastAPI titles an untyped answer after the handler's path ("Response Me Api V1
            # Me Get"); without a title, generators name it after the operation.
            if str(content.get("schema", {}).get("title", "")).startswith("Response "):
                del content["schema"]["title"]
        headers = response.setdefault("headers", {})
        headers.setdefault("X-Request-ID", REQUEST_ID)
        if code == "202" and route.path.startswith("/ws/"):
            headers["Content-Location"] = CONTENT_LOCATION


def _walk(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _walk(dep)


def error_statuses(route: APIRoute, method: str) -> dict[int, str | None]:
    """The problems an operation can answer: its dependencies', then its route's own."""
    out: dict[int, str | None] = {}
    calls = list(_walk(route.dependant))
    for call in calls:
        declared = getattr(call, "problem_statuses", None)
        for status in declared or DEPENDENCY_STATUSES.get(call, ()):
            out.setdefault(status, None)
        permission = getattr(call, "required_permission", None)
        if permission:
            out[403] = f"The caller's role lacks the `{permission}` permission"
    if query.query_dependency(route.dependant) is not None:  # a list, search or distinct
        out[400] = "A filter, sort, cursor or limit is not acceptable (the detail says which)"
    if get_flat_params(route.dependant):
        out.setdefault(422, None)
    if route.body_field is not None:
        out.setdefault(400, BODY_UNREADABLE)
        out.setdefault(422, None)
        out.setdefault(413, None)
    listing = query.query_dependency(route.dependant) is not None
    if method in WRITES and deps.get_workspace_session in calls and not listing:
        out.setdefault(409, None)
    if method == "POST" and idempotency.takes_part(route):
        out.setdefault(400, None)  # a malformed key
        out.setdefault(409, "A request with this `Idempotency-Key` is still being processed")
        out.setdefault(422, None)  # the key was used for another request
    for status, response in (route.responses or {}).items():
        if int(status) >= 400:
            out[int(status)] = response.get("description")
    return dict(sorted(out.items()))


def _item_schema(schema: dict[str, Any], route: APIRoute) -> dict[str, Any] | None:
    """The component of a list route's rows (`data` items of its page)."""
    components = schema["components"]["schemas"]
    for method in route.methods or ():
        ok = schema["paths"][route.path][method.lower()]["responses"].get("200", {})
        ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
        page = components.get(str(ref).rpartition("/")[2]) if ref else None
        item = (page or {}).get("properties", {}).get("data", {}).get("items", {}).get("$ref")
        if item:
            return components.get(item.rpartition("/")[2])  # type: ignore[no-any-return]
    return None


def _output_enums(
    schema: dict[str, Any], route: APIRoute, resource: Resource, enum_ref: query.EnumRef
) -> None:
    """A listed model's property holding an enum field of its `Resource` gets the enum."""
    item = _item_schema(schema, route)
    if item is None:
        return
    for name, field in resource.fields.items():
        prop = item.get("properties", {}).get(name)
        if prop is None or not isinstance(field.type, Enum):
            continue
        ref = enum_ref(resource, name, field.type)
        if prop.get("type") == "string":
            kept = {k: prop[k] for k in ("description",) if k in prop}
            item["properties"][name] = {**ref, **kept}
        for i, branch in enumerate(prop.get("anyOf", [])):
            if branch.get("type") == "string":
                prop["anyOf"][i] = ref


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _hideable_fields(components: dict[str, Any]) -> None:
    """A field some role's field rule hides is not `required`: that role's responses omit it."""
    for model in _subclasses(Output):
        resource = getattr(model, "__resource__", None)
        hidden = {f for rule in FIELD_RULES.get(resource or "", {}).values() for f in rule.exclude}
        component = components.get(model.__name__)
        if hidden and component and "required" in component:
            component["required"] = [f for f in component["required"] if f not in hidden]
            for name in hidden & set(component.get("properties", {})):
                note = "Hidden from roles whose field rules exclude it."
                prop = component["properties"][name]
                prop["description"] = (prop.get("description", "") + " " + note).strip()


def _binary_uploads(components: dict[str, Any]) -> None:
    """File parts are binary (FastAPI marks them with `contentMediaType` only, which client
    generators read as text)."""
    for component in components.values():
        for prop in component.get("properties", {}).values():
            if prop.get("contentMediaType") == "application/octet-stream":
                prop["format"] = "binary"
