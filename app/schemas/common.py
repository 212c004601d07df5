"""Shared schema pieces: strict input models, field-rule-aware output models, the page envelope."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from app.security.fields import check_write

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

    # NaN and ±Infinity are refused: JSON bodies may carry them, PostgreSQL's jsonb cannot.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)
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
    """Responses. `__resource__` names the resource whose field rules apply: the fields the
    caller's role may not see are left out, wherever the model nests (the API route class
    serializes every response through a variant of its model shaped by those rules)."""

    model_config = ConfigDict(from_attributes=True)
    __resource__: ClassVar[str | None] = None


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


class DistinctPage(BaseModel):
    """The distinct values of one field, ascending (nulls are not listed)."""

    data: list[Any]
    next_cursor: str | None = None
