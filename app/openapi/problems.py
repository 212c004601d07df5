"""Problem details in the OpenAPI: one `Problem` schema, its validation variant, and the
responses, headers and descriptions an operation's error statuses are documented with."""

from __future__ import annotations

from typing import Any

from app.errors import PROBLEM_JSON, TYPE_BASE

PROBLEM = "Problem"
VALIDATION_PROBLEM = "ValidationProblem"
VALIDATION_ERROR = "ValidationErrorItem"

SCHEMAS: dict[str, Any] = {
    PROBLEM: {
        "title": PROBLEM,
        "description": "An RFC 9457 problem detail. Some problems add members (e.g. `checks`).",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "Identifies the kind of problem"},
            "title": {"type": "string", "description": "Short summary of the kind"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "What went wrong, for this request"},
            "instance": {"type": "string", "description": "The request path"},
            "request_id": {"type": "string", "description": "The response's `X-Request-ID`"},
        },
        "additionalProperties": True,
    },
    VALIDATION_ERROR: {
        "title": VALIDATION_ERROR,
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"type": "string"},
                "description": 'Where: e.g. `["body", "uid"]` or `["query", "limit"]`',
            },
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    },
    VALIDATION_PROBLEM: {
        "title": VALIDATION_PROBLEM,
        "description": "A request that did not match the expected shape (422).",
        "allOf": [
            {"$ref": f"#/components/schemas/{PROBLEM}"},
            {
                "type": "object",
                "required": ["errors"],
                "properties": {
                    "errors": {
                        "type": "array",
                        "items": {"$ref": f"#/components/schemas/{VALIDATION_ERROR}"},
                    }
                },
            },
        ],
    },
}

# FastAPI's defaults, replaced by the schemas above.
REPLACED = ("HTTPValidationError", "ValidationError")

# status: (title, problem type slug, default description)
STATUSES: dict[int, tuple[str, str, str]] = {
    400: ("Bad request", "bad-request", "A value the request gives is not acceptable"),
    401: ("Unauthorized", "unauthorized", "Missing or invalid credentials"),
    403: ("Forbidden", "forbidden", "The caller's role does not allow this"),
    404: (
        "Not found",
        "not-found",
        "Unknown workspace or resource, or one the caller may not know of",
    ),
    409: ("Conflict", "conflict", "The change conflicts with existing data"),
    413: ("Payload too large", "payload-too-large", "The request body is too large"),
    422: ("Validation failed", "validation", "The request did not match the expected shape"),
    429: ("Too many requests", "too-many-requests", "Too many attempts; retry later"),
    503: (
        "Service unavailable",
        "service-unavailable",
        "The database or Redis is unavailable; retry later",
    ),
}


def header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


REQUEST_ID = header(
    "The request's id: the caller's `X-Request-ID` when well-formed, else a new one",
    {"type": "string", "maxLength": 64},
    required=True,
)
RETRY_AFTER = header("Seconds to wait before retrying", {"type": "integer", "minimum": 0})
WWW_AUTHENTICATE = header("`Bearer`", {"type": "string"})
CONTENT_LOCATION = header(
    "The task's address: `GET` it to follow the operation", {"type": "string"}, required=True
)

_STATUS_HEADERS = {401: {"WWW-Authenticate": WWW_AUTHENTICATE}, 429: {"Retry-After": RETRY_AFTER}}
_STATUS_HEADERS[503] = {"Retry-After": RETRY_AFTER}


def example(status: int, detail: str | None = None) -> dict[str, Any]:
    title, slug, default = STATUSES.get(status, ("Error", str(status), "Error"))
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail or default,
        "instance": "/ws/acme/api/v1/providers",
        "request_id": "7f3c9a0e5b1d4c2a9e8f6d5c4b3a2910",
    }
    if status == 422:
        body["detail"] = "The request did not match the expected shape"
        body["errors"] = [
            {
                "loc": ["body", "uid"],
                "msg": "String should have at least 1 character",
                "type": "string_too_short",
            }
        ]
    return body


def response(status: int, description: str | None = None) -> dict[str, Any]:
    """An error response of `status`: problem+json, its headers, an example."""
    schema = VALIDATION_PROBLEM if status == 422 else PROBLEM
    return {
        "description": description or STATUSES.get(status, ("", "", "Error"))[2],
        "headers": {"X-Request-ID": REQUEST_ID, **_STATUS_HEADERS.get(status, {})},
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": f"#/components/schemas/{schema}"},
                "example": example(status),
            }
        },
    }


def declare(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose handler answers these problems itself, beyond what its
    dependencies answer (a route may also give its own description per status)."""
    return {status: {"description": STATUSES[status][2]} for status in statuses}
