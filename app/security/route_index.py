"""Which permission each workspace route requires, read from the routes' own dependencies.

One walker feeds the OpenAPI (`x-required-permission` on every operation), the
`has-permission` explainer and the meta-tests, so none of them can drift from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute


@dataclass(frozen=True)
class RoutePermission:
    method: str
    path: str
    regex: re.Pattern[str]
    permission: str | None


def _routes(app: FastAPI) -> Iterator[Any]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI without router contexts: routes are flat already
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    yield from (r for r in iter_route_contexts(app.routes) if getattr(r, "dependant", None))


def _permission(dependant: Any) -> str | None:
    for dep in dependant.dependencies:
        found = getattr(dep.call, "required_permission", None) or _permission(dep)
        if found:
            return str(found)
    return None


def route_permissions(app: FastAPI) -> list[RoutePermission]:
    out = []
    for route in _routes(app):
        for method in sorted(route.methods or ()):
            out.append(
                RoutePermission(method, route.path, route.path_regex, _permission(route.dependant))
            )
    return out


def permission_for(app: FastAPI, method: str, path: str) -> RoutePermission | None:
    for entry in route_permissions(app):
        if entry.method == method.upper() and entry.regex.match(path):
            return entry
    return None


def annotate_openapi(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Add `x-required-permission` to each operation that declares one."""
    for entry in route_permissions(app):
        if entry.permission is None:
            continue
        operation = schema.get("paths", {}).get(entry.path, {}).get(entry.method.lower())
        if operation is not None:
            operation["x-required-permission"] = entry.permission
            note = f"\n\nRequires the `{entry.permission}` permission in the workspace."
            operation["description"] = (operation.get("description") or "") + note
    return schema
