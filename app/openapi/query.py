"""The query language of a list route as OpenAPI parameters, read from its `Resource`.

A list route depends on one of a `Resource`'s query dependencies; from that resource's fields
each list gets `field=` and `field__op=` query parameters typed by the field (the operators the
field's type takes, no others), `sort` naming the sortable fields, `limit` bounded by the
installation's page size, and, for search and distinct, `{field}` as an enum of the fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from app.query import Field, Resource
from app.query.types import (
    ORDERED,
    TEXTUAL,
    Boolean,
    Enum,
    FieldType,
    Integer,
    Text,
    Timestamp,
    Uuid,
    integer_bounds,
)

# A named schema (a `$ref`) for an enum field of a resource: (resource, field name, type).
EnumRef = Callable[[Resource, str, Enum], dict[str, Any]]

QUERY_DEPENDENCIES = frozenset({"list_query", "search_query", "distinct_query"})
_OP_ORDER = ["ne", "in", "exists", *sorted(TEXTUAL), *sorted(ORDERED)]
_OP_DOC = {
    "eq": "equals",
    "ne": "not equal (also matches a missing value)",
    "in": "one of a JSON list",
    "exists": "has a value (`true`) or has none (`false`)",
    "startswith": "starts with (case-sensitive)",
    "contains": "contains (case-sensitive; `%` and `_` match literally)",
    "notcontains": "does not contain (also matches a missing value)",
    "gt": "greater than",
    "gte": "greater than or equal",
    "lt": "less than",
    "lte": "less than or equal",
    "between": "inclusive range, a JSON list `[low, high]`",
}
_SAMPLES: dict[type[FieldType], Any] = {
    Uuid: "0190c2a4-5e5b-7cc2-9d7e-2f1c3a4b5c6d",
    Integer: 200,
    Boolean: True,
    Timestamp: "2024-05-01",
    Text: "prod",
}


def query_dependency(dependant: Any) -> tuple[Resource, str] | None:
    """The `Resource` a route lists and which of its query dependencies the route uses."""
    for dep in dependant.dependencies:
        owner = getattr(dep.call, "__self__", None)
        name = getattr(getattr(dep.call, "__func__", None), "__name__", "")
        if isinstance(owner, Resource) and name in QUERY_DEPENDENCIES:
            return owner, name
        found = query_dependency(dep)
        if found is not None:
            return found
    return None


def type_schema(field: Field) -> dict[str, Any]:
    ftype = field.type
    if isinstance(ftype, Enum):
        return {"type": "string", "enum": list(ftype.values)}
    if isinstance(ftype, Uuid):
        return {"type": "string", "format": "uuid"}
    if isinstance(ftype, Integer):
        low, high = integer_bounds(field.column.type)
        return {
            "type": "integer",
            "format": "int64" if high > 2**31 else "int32",
            "minimum": low,
            "maximum": high,
        }
    if isinstance(ftype, Boolean):
        return {"type": "boolean"}
    if isinstance(ftype, Timestamp):
        return {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ]
        }
    return {"type": "string", "maxLength": 1000}


def _sample(ftype: FieldType) -> Any:
    if isinstance(ftype, Enum):
        return ftype.values[0]
    return next((v for t, v in _SAMPLES.items() if isinstance(ftype, t)), "a")


def _op_schema(op: str, field: Field, named: dict[str, Any] | None) -> dict[str, Any]:
    if op == "exists":
        return {"type": "boolean"}
    if op in TEXTUAL:
        return {"type": "string", "maxLength": 1000}
    if op in ("in", "between"):
        return {"type": "string", "maxLength": 20000}
    return named if named is not None else type_schema(field)


def filter_parameters(
    resource: Resource, skip: frozenset[str], enum_ref: EnumRef
) -> list[dict[str, Any]]:
    """`field` and `field__op` query parameters for each field (but those in `skip`)."""
    out = []
    for name, field in resource.fields.items():
        if name in skip:
            continue
        named = enum_ref(resource, name, field.type) if isinstance(field.type, Enum) else None
        ops = ["eq", *(op for op in _OP_ORDER if op in field.type.ops)]
        for op in ops:
            key = name if op == "eq" else f"{name}__{op}"
            what = field.type.describe()
            param: dict[str, Any] = {
                "name": key,
                "in": "query",
                "required": False,
                "description": f"`{name}` ({what}): {_OP_DOC[op]}",
                "schema": _op_schema(op, field, named),
            }
            if op in ("in", "between"):
                sample = _sample(field.type)
                param["example"] = json.dumps([sample, sample] if op == "between" else [sample])
            out.append(param)
    return out


def apply(
    operation: dict[str, Any],
    resource: Resource,
    kind: str,
    path_names: set[str],
    page_max: int,
    enum_ref: EnumRef,
) -> None:
    """Rewrite a list operation's parameters: typed filters, `sort`, `limit`, `{field}`."""
    params: list[dict[str, Any]] = operation.setdefault("parameters", [])
    path_filters = frozenset(n for n in path_names if n in resource.fields)
    for param in params:
        name = param["name"]
        if param["in"] == "path" and name == "field":
            fields = list(resource.fields)
            param["schema"] = {"type": "string", "enum": fields}
            param["description"] = "The field to " + (
                "search on" if kind == "search_query" else "list the values of"
            )
        elif param["in"] == "path" and name in path_filters:
            param["schema"] = type_schema(resource.fields[name])
        elif name == "limit":
            param["schema"] = {
                "type": "integer",
                "minimum": 1,
                "maximum": page_max,
                "default": min(50, page_max),
            }
        elif name == "sort":
            sortable = [n for n, f in resource.fields.items() if f.sortable]
            default = ",".join(resource.default_sort)
            param["description"] = (
                f"Sort keys, comma-separated, `-` for descending (default `{default}`); "
                f"sortable: {', '.join(sortable)}"
            )
            param["schema"] = {"type": "string", "maxLength": 300}
    declared = {p["name"] for p in params}
    params.extend(
        p for p in filter_parameters(resource, path_filters, enum_ref) if p["name"] not in declared
    )
    for name in sorted(path_names - declared):
        field = resource.fields.get(name)
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": type_schema(field) if field else {"type": "string"},
            }
        )
