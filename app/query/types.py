"""Field types of the query language: which operators a type takes and how values are parsed.

A value arrives as a query-string string (`field=value`, `field__gt=value`) or as an element
of a JSON list (`field__in=[...]`, `between`, the search body). Either way it is parsed to the
field's Python type here, before any SQL is built, and checked against what its column can hold
(an int4 column takes no 2**40, a timestamp no year 10000, a UUIDv7 time no instant before 1970),
so every value reaches the database as a bound parameter it accepts. A `ValueError` carries the
user-facing explanation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import BigInteger as SQLBigInteger
from sqlalchemy import SmallInteger as SQLSmallInteger

EQUALITY = frozenset({"eq", "ne", "in", "exists"})
ORDERED = frozenset({"gt", "lt", "gte", "lte", "between"})
TEXTUAL = frozenset({"startswith", "contains", "notcontains"})

MAX_TEXT = 1000
INT16 = (-(2**15), 2**15 - 1)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_INT = re.compile(r"^[+-]?\d{1,19}$")
# Instants as the database and the driver can hold them (UTC); a bare date is a whole day, so
# the last representable day has no end.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


class FieldType:
    """Base: equality operators only; strings are parsed by `parse_text`."""

    name = "value"
    label = "a value"  # for messages: "'x' is not a UUID"
    ops: frozenset[str] = EQUALITY
    text_like = False  # sorted and range-compared with the "C" collation

    def parse_text(self, raw: str) -> Any:
        raise NotImplementedError

    def parse_json(self, item: Any) -> Any:
        """An element of a JSON list: strings go through `parse_text`; others must fit."""
        if isinstance(item, str):
            return self.parse_text(item)
        raise ValueError(f"{_show(item)} is not {self.label}")

    def describe(self) -> str:
        return self.name

    def check(self, value: Any, column_type: Any) -> None:
        """Raise `ValueError` when `value` does not fit a column of `column_type`."""

    def to_cursor(self, value: Any) -> Any:
        return value

    def from_cursor(self, value: Any) -> Any:
        return self.parse_json(value)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "...'"


def _check_text(raw: str) -> str:
    if "\x00" in raw:
        raise ValueError("values must not contain NUL characters")
    if len(raw) > MAX_TEXT:
        raise ValueError(f"values are at most {MAX_TEXT} characters")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("values must be valid Unicode (no lone surrogates)") from None
    return raw


class Text(FieldType):
    name = "string"
    label = "a string"
    ops = EQUALITY | ORDERED | TEXTUAL
    text_like = True

    def parse_text(self, raw: str) -> str:
        return _check_text(raw)


@dataclass(frozen=True, eq=False)
class Enum(FieldType):
    """One of a fixed set of strings (provider types, roles, HTTP methods), matched without
    regard to case (`severity=High`, `status=fail`) and bound as the declared spelling."""

    values: tuple[str, ...]
    name = "enum"
    label = "one of the allowed values"
    text_like = True

    def describe(self) -> str:
        return f"enum: {', '.join(self.values)}"

    def parse_text(self, raw: str) -> str:
        if raw in self.values:
            return raw
        found = self._folded.get(raw.casefold())
        if found is None:
            raise ValueError(f"{_show(raw)} is not one of: {', '.join(self.values)}")
        return found

    @cached_property
    def _folded(self) -> dict[str, str]:
        return {value.casefold(): value for value in self.values}


class Uuid(FieldType):
    name = "uuid"
    label = "a UUID"
    ops = EQUALITY | ORDERED  # UUIDv7 ids are time-ordered, so ranges are meaningful

    def parse_text(self, raw: str) -> uuid.UUID:
        try:
            return uuid.UUID(_check_text(raw).strip())
        except ValueError:
            raise ValueError(f"{_show(raw)} is not {self.label}") from None

    def to_cursor(self, value: Any) -> Any:
        return str(value)


class Integer(FieldType):
    name = "integer"
    label = "an integer"
    ops = EQUALITY | ORDERED

    def parse_text(self, raw: str) -> int:
        raw = raw.strip()
        if not _INT.match(raw):
            raise ValueError(f"{_show(raw)} is not {self.label}")
        return self._range(int(raw))

    def parse_json(self, item: Any) -> int:
        if isinstance(item, int) and not isinstance(item, bool):
            return self._range(item)
        return super().parse_json(item)

    def _range(self, value: int) -> int:
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError(f"{value} is out of range")
        return value

    def check(self, value: Any, column_type: Any) -> None:
        low, high = integer_bounds(column_type)
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low} to {high})")


def integer_bounds(column_type: Any) -> tuple[int, int]:
    """What an integer column holds: int2, int4 (the default) or int8."""
    if isinstance(column_type, SQLBigInteger):
        return INT64
    if isinstance(column_type, SQLSmallInteger):
        return INT16
    return INT32


class Boolean(FieldType):
    name = "boolean"
    label = "true or false"
    _WORDS = {"true": True, "1": True, "false": False, "0": False}

    def parse_text(self, raw: str) -> bool:
        try:
            return self._WORDS[raw.strip().lower()]
        except KeyError:
            raise ValueError(f"{_show(raw)} is not {self.label}") from None

    def parse_json(self, item: Any) -> bool:
        if isinstance(item, bool):
            return item
        return super().parse_json(item)


@dataclass(frozen=True)
class Day:
    """A date without a time stands for that whole day (UTC): `created_at=2024-05-01` matches
    the day, `lte` includes it, `gt` starts after it."""

    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


class Timestamp(FieldType):
    name = "timestamp"
    label = "a timestamp (ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
    ops = EQUALITY | ORDERED

    def parse_text(self, raw: str) -> datetime | Day:
        raw = _check_text(raw).strip()
        try:
            if len(raw) == 10:
                d = date.fromisoformat(raw)
                return self._within(Day(datetime(d.year, d.month, d.day, tzinfo=UTC)), raw)
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{_show(raw)} is not {self.label}") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            value = LATEST + timedelta(days=1) if value.year > 1 else EARLIEST - timedelta(days=1)
        return self._within(value, raw)

    def _within(self, value: datetime | Day, raw: str) -> datetime | Day:
        instant = value.start if isinstance(value, Day) else value
        if not EARLIEST <= instant <= LATEST:
            raise ValueError(f"{_show(raw)} is out of range ({EARLIEST.date()} to {LATEST.date()})")
        return value

    def to_cursor(self, value: Any) -> Any:
        return value.isoformat()

    def from_cursor(self, value: Any) -> datetime:
        parsed = self.parse_json(value)
        if isinstance(parsed, Day):
            raise ValueError("not an instant")
        return parsed


def describe_ops(ops: Iterable[str]) -> str:
    order = ["eq", *sorted(EQUALITY - {"eq"}), *sorted(TEXTUAL), *sorted(ORDERED)]
    return ", ".join(o for o in order if o in set(ops))


@dataclass(frozen=True)
class IdDay(Day):
    """A whole day as a range of UUIDv7 ids (see `IdTime`)."""

    stop: Any = None

    @property
    def end(self) -> Any:
        return self.stop


UUID7_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IdTime(Timestamp):
    """A time filter on a UUIDv7 id column: instants become the smallest id of that
    millisecond, so `field__gte=2024-05-01` is `id >= …` and PostgreSQL prunes the partitions
    of a table range-partitioned on the id. Filter-only (declare the field `sortable=False`).
    UUIDv7 times start at 1970-01-01."""

    name = "timestamp"

    def parse_text(self, raw: str) -> Any:
        from app.db.partitions import floor_uuid7

        value = super().parse_text(raw)
        instant = value.start if isinstance(value, Day) else value
        if instant < UUID7_EPOCH:
            raise ValueError(f"{_show(raw)} is before 1970-01-01, where ids begin")
        if isinstance(value, Day):
            return IdDay(floor_uuid7(value.start), floor_uuid7(value.end))  # type: ignore[arg-type]
        return floor_uuid7(value)
