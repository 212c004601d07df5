"""Shared schema pieces: strict input models, field-rule-aware output models, the page envelope."""

from __future__ import annotations

import enum
import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable, Mapping
from copy import copy
from datetime import date, datetime
from functools import lru_cache
from types import UnionType
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union, get_args, get_origin

import asyncpg
import orjson
from fastapi import Response
from fastapi.exceptions import ResponseValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic import Field as PydanticField

from app.security.fields import FieldRule, check_write, current_rules

T = TypeVar("T")


def _has_nul(value: Any) -> bool:
    """NUL anywhere in a string, a key or a nested value (JSONB refuses `\u0000` too).
    Iterative: a deeply nested body must not turn into a RecursionError (a 500)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return False


class Input(BaseModel):
    """Request bodies: unknown fields are refused (422), strings are stripped, strings holding
    NUL are refused (422: PostgreSQL text cannot store it, so it would fail in the database as
    a 5xx), and fields the caller's role may not write are refused (403) before anything runs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    __resource__: ClassVar[str | None] = None
    __update__: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _field_rules(cls, data: Any) -> Any:
        if cls.__resource__ and isinstance(data, dict):
            check_write(cls.__resource__, data.keys(), update=cls.__update__)
        return data

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


class Output(BaseModel):
    """Responses: fields excluded for the caller's role are dropped, wherever the model nests
    (`shaped` gives the variant of a response type that leaves them out)."""

    model_config = ConfigDict(from_attributes=True)
    __resource__: ClassVar[str | None] = None


Hidden = frozenset[tuple[str, str]]  # (resource, field) pairs the caller's rules exclude


def hidden_fields(rules: Mapping[str, FieldRule]) -> Hidden:
    return frozenset((resource, name) for resource, rule in rules.items() for name in rule.exclude)


@lru_cache(maxsize=1024)
def shaped(annotation: Any, hidden: Hidden) -> Any:
    """`annotation` (a response model, or a list/optional/generic of them) with every field in
    `hidden` left out of serialization, at any depth. Without a hidden field in reach it is the
    annotation itself. The variants are built once per (type, rules) and serialize entirely in
    pydantic's core: no Python code runs per object or per row."""
    if not hidden:
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _shaped_model(annotation, hidden)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None or not args:
        return annotation
    new_args = tuple(shaped(a, hidden) if not isinstance(a, str) else a for a in args)
    if new_args == args:
        return annotation
    if origin is Annotated:
        return Annotated[(new_args[0], *annotation.__metadata__)]
    if origin in (Union, UnionType):
        return Union[new_args]  # noqa: UP007 - built from a tuple
    return origin[new_args if len(new_args) > 1 else new_args[0]]


def _shaped_model(model: type[BaseModel], hidden: Hidden) -> type[BaseModel]:
    resource = getattr(model, "__resource__", None)
    overrides: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if resource is not None and (resource, name) in hidden:
            overrides[name] = (Any, PydanticField(default=None, exclude=True))
            continue
        inner = shaped(info.annotation, hidden)  # type: ignore[arg-type]
        if inner is not info.annotation:
            kept = copy(info)
            kept.annotation = inner
            overrides[name] = (inner, kept)
    if not overrides:
        return model
    return create_model(model.__name__, __base__=model, __module__=model.__module__, **overrides)


@lru_cache(maxsize=1024)
def response_adapter(annotation: Any, hidden: Hidden) -> TypeAdapter[Any]:
    """Validator and JSON serializer of a route's response type, shaped by the hidden fields."""
    return TypeAdapter(shaped(annotation, hidden))


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


# Rows of the compiled-query path (`app.query.plan`) come from the database as mappings of
# plain values of the columns' types: a page of them in a flat response model is serialized
# by orjson from the shaped field list, with the output pydantic gives (a test compares the
# bytes), at a fraction of the cost of validating and dumping each row.
_PLAIN = (uuid.UUID, str, int, float, bool, datetime, date, type(None))
_JSON = orjson.OPT_UTC_Z


def _plain(annotation: Any) -> bool:
    if annotation in _PLAIN or annotation is Any:
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return issubclass(annotation, str)  # serialized as its value
    origin = get_origin(annotation)
    if origin in (Union, UnionType, dict, list):  # optionals, and JSON values of a jsonb
        return all(_plain(a) for a in get_args(annotation))
    return False


@lru_cache(maxsize=1024)
def row_fields(annotation: Any, hidden: Hidden) -> tuple[str, ...] | None:
    """For a `Page` of a flat model (plain values only, no aliases), the fields a row shows
    under these hidden fields; None where only pydantic can serialize the type."""
    model = shaped(annotation, hidden)
    if not (isinstance(model, type) and issubclass(model, Page)):
        return None
    if set(model.model_fields) != {"data", "next_cursor"}:
        return None
    (item,) = get_args(model.model_fields["data"].annotation) or (None,)
    if not (isinstance(item, type) and issubclass(item, BaseModel)):
        return None
    shown = []
    for name, info in item.model_fields.items():
        if info.exclude:
            continue
        if info.alias or info.serialization_alias or not _plain(info.annotation):
            return None
        shown.append(name)
    decorators = item.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers or decorators.computed_fields:
        return None
    return tuple(shown)


def _text(value: Any) -> str:
    if isinstance(value, uuid.UUID):  # the driver's own UUID type (orjson takes uuid.UUID only)
        return str(value)
    raise TypeError


_ROW_TYPES = (dict, asyncpg.Record)


def rows_json(fields: tuple[str, ...], content: Any) -> bytes | None:
    """`{"data": [...], "next_cursor": ...}` of database rows (driver records or dicts) as JSON
    bytes, or None when `content` is not such a page (entities, say): pydantic serializes it."""
    if not isinstance(content, dict) or content.keys() != {"data", "next_cursor"}:
        return None
    rows = content["data"]
    if not isinstance(rows, list) or not all(type(row) in _ROW_TYPES for row in rows):
        return None
    try:
        data = [{name: row[name] for name in fields} for row in rows]
        page = {"data": data, "next_cursor": content["next_cursor"]}
        return orjson.dumps(page, default=_text, option=_JSON)
    except (KeyError, TypeError):
        return None


class DistinctPage(BaseModel):
    """The distinct values of one field, ascending (nulls are not listed)."""

    data: list[Any]
    next_cursor: str | None = None


def _plain_rows(content: Any) -> Any:
    """Driver records as dicts, for pydantic (which reads mappings and attributes)."""
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        rows = content["data"]
        if rows and isinstance(rows[0], asyncpg.Record):
            return {**content, "data": [dict(row) for row in rows]}
    return content


def shaping_endpoint(
    endpoint: Callable[..., Awaitable[Any]], response_model: Any, status_code: int | None
) -> Callable[..., Awaitable[Any]]:
    """`endpoint`, answering with its return value validated against `response_model` and
    serialized with the fields the caller's rules exclude left out (the route class wraps every
    endpoint that declares a response model, so no handler deals with field rules).

    What FastAPI would do with the return value, done with the shaped type: a value that does
    not fit the model is a `ResponseValidationError` (a 500, nothing of it shown); a `Response`
    the endpoint built itself passes through; headers and status set on an injected `Response`
    parameter are kept."""
    injected = next(
        (
            name
            for name, p in inspect.signature(endpoint).parameters.items()
            if p.annotation in (Response, "Response")
        ),
        None,
    )

    @functools.wraps(endpoint)
    async def shaped_endpoint(*args: Any, **kwargs: Any) -> Any:
        content = await endpoint(*args, **kwargs)
        if isinstance(content, Response):
            return content
        hidden = hidden_fields(current_rules.get())
        fields = row_fields(response_model, hidden)
        body = rows_json(fields, content) if fields is not None else None
        if body is None:
            content = _plain_rows(content)
            adapter = response_adapter(response_model, hidden)
            try:
                value = adapter.validate_python(content, from_attributes=True)
            except ValidationError as exc:
                raise ResponseValidationError(errors=exc.errors(include_url=False)) from None
            body = adapter.dump_json(value)
        response = Response(body, status_code=status_code or 200, media_type="application/json")
        given = kwargs.get(injected) if injected else None
        if isinstance(given, Response):
            if given.status_code:
                response.status_code = given.status_code
            response.headers.update(given.headers)
        return response

    shaped_endpoint.shapes_responses = True  # type: ignore[attr-defined]
    return shaped_endpoint
