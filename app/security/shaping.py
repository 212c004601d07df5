"""Responses shaped by the caller's field rules.

Invariant: every API response with a declared model is validated and serialized through a
variant of that model that leaves out the fields the caller's rules exclude, at any depth, and,
for resources linked to a provider, with the values of hidden provider fields masked wherever
they occur in the body (a finding's ARN, its raw record, an audit record's state). The variants
are built once per (type, rules) and serialize entirely in pydantic's core; pages of driver
records are serialized by orjson from the shaped field list, with the bytes pydantic gives.
"""

from __future__ import annotations

import enum
import functools
import inspect
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from copy import copy
from datetime import date, datetime
from functools import lru_cache
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import asyncpg
import orjson
from fastapi import Response
from fastapi.exceptions import ResponseValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError, create_model
from pydantic import Field as PydanticField
from sqlalchemy import select

from app.db.base import entity_named, scoped_entities
from app.db.models import Membership
from app.security.fields import MASK, FieldRule, current_rules, hidden_provider_fields
from app.security.principal import WorkspaceContext, current_workspace

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


# Rows of the compiled-query path come from the database as mappings of
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
    """For a page (`{data, next_cursor}`) of a flat model (plain values only, no aliases), the
    fields a row shows under these hidden fields; None where only pydantic can serialize it."""
    model = shaped(annotation, hidden)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
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


def _plain_rows(content: Any) -> Any:
    """Driver records as dicts, for pydantic (which reads mappings and attributes)."""
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        rows = content["data"]
        if rows and isinstance(rows[0], asyncpg.Record):
            return {**content, "data": [dict(row) for row in rows]}
    return content


def shaping_endpoint(
    endpoint: Callable[..., Awaitable[Any]],
    response_model: Any,
    status_code: int | None,
    resource: str | None,
) -> Callable[..., Awaitable[Any]]:
    """`endpoint`, answering with its return value validated against `response_model` and
    serialized with the fields the caller's rules exclude left out, and the values of hidden
    provider fields masked when the route's `resource` relates to providers (the route class
    wraps every endpoint that declares a response model, so no handler deals with field rules).

    What FastAPI would do with the return value, done with the shaped type: a value that does
    not fit the model is a `ResponseValidationError` (a 500, nothing of it shown); a `Response`
    the endpoint built itself passes through; headers and status set on an injected `Response`
    parameter are kept."""
    entity = entity_named(resource) if resource is not None else None
    about_resources = entity is not None and entity.__provider__.by_reference
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
        masked = hidden_provider_fields(current_rules.get())
        # The values to mask are read before the endpoint writes anything: on Citus a definer
        # function cannot read a shard this transaction's own role has modified.
        values = await values_to_mask(resource, masked) if masked and resource else None
        content = await endpoint(*args, **kwargs)
        if isinstance(content, Response):
            return content
        rules = current_rules.get()
        hidden = hidden_fields(rules)
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
        if values:
            body = mask_provider_values(body, values)
        if about_resources:
            body = await mask_unseen_ids(body)
        response = Response(body, status_code=status_code or 200, media_type="application/json")
        given = kwargs.get(injected) if injected else None
        if isinstance(given, Response):
            if given.status_code:
                response.status_code = given.status_code
            response.headers.update(given.headers)
        return response

    shaped_endpoint.shapes_responses = True  # type: ignore[attr-defined]
    return shaped_endpoint


# Masking hidden provider values

MASKABLE = frozenset({"uid"})  # the provider fields whose values can be masked
VALUES_TTL = 5.0  # seconds a workspace's provider values are reused


@lru_cache(maxsize=1024)
def _boundary_pattern(values: frozenset[bytes]) -> re.Pattern[bytes]:
    """One regex for every value (as it appears inside JSON strings, in any case), matched as a
    whole token (not inside a longer run of letters and digits). Built once per set of
    values."""
    alternatives = b"|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rb"(?<![A-Za-z0-9])(?:" + alternatives + rb")(?![A-Za-z0-9])", re.IGNORECASE)


_VALUES: dict[uuid.UUID, tuple[float, frozenset[bytes]]] = {}


def forget_provider_values(workspace_id: uuid.UUID) -> None:
    """A provider was created or changed in this process: read the workspace's values again."""
    _VALUES.pop(workspace_id, None)


async def _provider_values(context: WorkspaceContext) -> frozenset[bytes]:
    """The (JSON-escaped, lower-cased) uid of every provider of the workspace, the ones the
    caller may not see included: a visible finding can name a hidden provider's account.
    Reused for a few seconds (uids never change; a provider created meanwhile by another
    process is masked from the next read on)."""
    now = time.monotonic()
    cached = _VALUES.get(context.workspace_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    rows = await context.tx.fetch("SELECT warden_provider_uids() AS uid")
    values = frozenset(orjson.dumps(r["uid"])[1:-1].lower() for r in rows if r["uid"])
    if len(_VALUES) > 4096:
        _VALUES.clear()
    _VALUES[context.workspace_id] = (now + VALUES_TTL, values)
    return values


async def values_to_mask(resource: str, fields: frozenset[str]) -> frozenset[bytes] | None:
    """The values of the hidden provider `fields` to mask in a response about a
    provider-linked `resource` (or about other resources: the audit log); None when such a
    response names no provider."""
    entity = entity_named(resource)
    link = entity.__provider__ if entity is not None else None
    context = current_workspace.get()
    if link is None or not (link.column or link.by_reference) or context is None:
        return None
    if not fields <= MASKABLE:
        raise RuntimeError(f"no way to mask provider fields {sorted(fields - MASKABLE)}")
    return await _provider_values(context)


def mask_provider_values(body: bytes, values: frozenset[bytes]) -> bytes:
    """`body` with every one of `values` replaced by `MASK`."""
    lowered = body.lower()
    present = frozenset(v for v in values if v in lowered)
    if not present:  # a substring scan: usually nothing to mask
        return body
    return _boundary_pattern(present).sub(MASK.encode(), body)


# Ids of rows the reader may not see, in records about other resources (the audit log)

# Every spelling `uuid.UUID` reads: 32 hex digits, any case, hyphens anywhere between them.
_UUID = re.compile(
    rb"(?<![0-9A-Fa-f-])(?:[0-9A-Fa-f]-?){31}[0-9A-Fa-f](?![0-9A-Fa-f]|-[0-9A-Fa-f])"
)


async def unseen_ids(ctx: WorkspaceContext, text: bytes) -> set[bytes]:
    """The ids in `text` that are not the id of anything the reader may see. A record about a
    visible resource can still name hidden ones (another member's list filtered on a provider
    the reader cannot see, a group's former provider ids, a request for a hidden id). Empty
    for a reader who sees every row of the workspace."""
    if ctx.principal.unrestricted:
        return set()
    named = {m[0]: uuid.UUID(m[0].decode()) for m in _UUID.finditer(text)}
    if not named:
        return set()
    ids = list(set(named.values()))
    seen = {ctx.workspace_id}
    for entity in scoped_entities():
        if hasattr(entity, "id") and not entity.__provider__.by_reference:
            column = entity.id  # type: ignore[attr-defined]
            found = await ctx.session.execute(select(column).where(column.in_(ids)))
            seen |= set(found.scalars())
    members = select(Membership.user_id).where(Membership.user_id.in_(ids))
    seen |= set((await ctx.session.execute(members)).scalars())
    return {spelling for spelling, value in named.items() if value not in seen}


async def mask_unseen_ids(body: bytes) -> bytes:
    """`body` with the ids of rows the reader may not see replaced by `MASK`."""
    context = current_workspace.get()
    if context is None:
        return body
    unseen = await unseen_ids(context, body)
    if not unseen:
        return body
    return _UUID.sub(lambda m: MASK.encode() if m[0] in unseen else m[0], body)
