"""An incremental reader for one large top-level JSON array: feed it chunks, get the elements
that are complete so far. Memory stays at one chunk plus one element, whatever the file size.

Each element is decoded with the standard library's C scanner (`raw_decode`), an order of
magnitude faster than event-based parsers for reports made of many small records. An element
still incomplete at the end of a chunk is retried once more data arrives; one that grows past
`max_element` characters is refused (a corrupt or hostile file cannot make the reader buffer
it whole).
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9eE.+\-]*")
MAX_ELEMENT = 8 * 1024 * 1024


class JsonStreamError(ValueError):
    """Not a well-formed JSON array; the message says where."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class JsonArrayReader:
    def __init__(self, max_element: int = MAX_ELEMENT) -> None:
        self._decoder = json.JSONDecoder(parse_constant=_reject_constant)
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self._buf = ""
        self._state = "start"  # start, first, value, after, done
        self._max = max_element
        self.count = 0  # elements returned so far

    def feed(self, chunk: bytes) -> Iterator[Any]:
        """Elements completed by `chunk`, one at a time (consume them before feeding more).
        Handing them out one by one keeps few objects alive at once, which keeps the garbage
        collector's work small on large reports."""
        try:
            text = self._utf8.decode(chunk)
        except UnicodeDecodeError as exc:
            raise JsonStreamError(f"the file is not UTF-8 ({exc.reason})") from None
        return self._scan(text, final=False)

    def close(self) -> Iterator[Any]:
        """The last elements; raises (once they are consumed) if the array is not complete."""
        try:
            text = self._utf8.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise JsonStreamError(f"the file is not UTF-8 ({exc.reason})") from None
        yield from self._scan(text, final=True)
        if self._state != "done":
            raise JsonStreamError(
                f"the file ends before the array does, after {self.count} elements"
            )

    def _scan(self, text: str, *, final: bool) -> Iterator[Any]:
        buf = self._buf + text
        pos, end = 0, len(buf)
        while True:
            match = _SPACE.match(buf, pos)
            pos = match.end() if match else pos
            if pos >= end:
                break
            char = buf[pos]
            if self._state == "start":
                if char != "[":
                    raise JsonStreamError("the file is not a JSON array")
                self._state, pos = "first", pos + 1
            elif self._state == "first" and char == "]":
                self._state, pos = "done", pos + 1
            elif self._state in ("first", "value"):
                try:
                    element, stop = self._decoder.raw_decode(buf, pos)
                except RecursionError:
                    raise JsonStreamError(
                        f"element {self.count + 1} is nested too deeply to be read"
                    ) from None
                except ValueError as exc:
                    if final or end - pos > self._max:
                        raise self._error(exc, end - pos) from None
                    break  # probably cut by the chunk boundary: wait for more
                if not final and not isinstance(element, (dict, list, str)):
                    tail = _NUMBER_TAIL.match(buf, stop)
                    if tail is None or tail.end() >= end:
                        break  # a number may go on in the next chunk ("-0" of "-0.5")
                self.count += 1
                self._state, pos = "after", stop
                yield element
            elif self._state == "after":
                if char not in ",]":
                    raise JsonStreamError(
                        f"expected ',' or ']' after element {self.count}, found {char!r}"
                    )
                self._state, pos = ("value" if char == "," else "done"), pos + 1
            else:
                raise JsonStreamError("unexpected data after the end of the array")
        self._buf = buf[pos:]

    def _error(self, exc: ValueError, pending: int) -> JsonStreamError:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        if "integer string conversion" in detail:
            detail = f"a number longer than {sys.get_int_max_str_digits()} digits"
        truncated = isinstance(exc, json.JSONDecodeError) and (
            exc.pos >= len(exc.doc) or detail.startswith("Unterminated")
        )
        if truncated and pending <= self._max:
            return JsonStreamError(f"the file ends in the middle of element {self.count + 1}")
        if pending > self._max:
            detail += f" (or an element larger than {self._max} characters)"
        return JsonStreamError(f"invalid JSON after {self.count} elements: {detail}")
