"""Stable, readable names: operation ids from the route, model names without FastAPI's
generated parts.

An operation id is `<collection>_<verb>`: the collection is the path segment after `v1`
(`provider-groups` → `provider_groups`), or the route's tag outside the API; the verb is the
handler's name without the words naming the collection (`list_provider_groups` →
`provider_groups_list`, `cancel_task` → `tasks_cancel`). A route that sets `operation_id` keeps
it. Request bodies FastAPI names `Body_<handler>_<path>_<method>` become `<OperationId>Body`,
pages `Page_<Model>Out_` become `<Model>Page`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute

_METHOD_VERBS = {"GET": "get", "POST": "create", "PUT": "replace", "PATCH": "update"}
_PAGE = re.compile(r"^Page_(?P<model>\w+?)(?:Out)?_$")


def _collection(route: APIRoute) -> str:
    segments = [s for s in route.path.split("/") if s and not s.startswith("{")]
    if "v1" in segments and segments.index("v1") + 1 < len(segments):
        return segments[segments.index("v1") + 1]
    return str(route.tags[0]) if route.tags else "api"


def operation_id(route: APIRoute, method: str) -> str:
    if route.operation_id:
        return route.operation_id
    prefix = _collection(route).replace("-", "_").replace(" ", "_")
    naming = set(prefix.split("_")) | {"my"}
    naming |= {w.removesuffix("s") for w in naming} | {w + "s" for w in naming}
    words = [w for w in route.endpoint.__name__.split("_") if w and w not in naming]
    verb = "_".join(words) or _METHOD_VERBS.get(method, method.lower())
    return f"{prefix}_{verb}"


def camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def model_renames(schema: dict[str, Any], body_names: dict[str, str]) -> dict[str, str]:
    """Old component name → new, for request bodies (by operation id) and pages."""
    renames = {old: f"{camel(op_id)}Body" for old, op_id in body_names.items()}
    for name in schema.get("components", {}).get("schemas", {}):
        match = _PAGE.match(name)
        if match:
            renames[name] = f"{match['model']}Page"
    return renames


def rename_components(schema: dict[str, Any], renames: dict[str, str]) -> None:
    """Rename component schemas and every `$ref` to them."""
    components = schema.get("components", {}).get("schemas", {})
    for old, new in renames.items():
        if old in components:
            if new in components:
                raise ValueError(f"component {new!r} exists already (renaming {old!r})")
            body = components.pop(old)
            body["title"] = new
            components[new] = body
    refs = {f"#/components/schemas/{o}": f"#/components/schemas/{n}" for o, n in renames.items()}
    _rewrite_refs(schema, refs)


def _rewrite_refs(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in refs:
            node["$ref"] = refs[ref]
        for value in node.values():
            _rewrite_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, refs)
