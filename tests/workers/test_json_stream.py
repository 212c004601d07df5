"""The incremental JSON array reader the import streams reports through."""

from __future__ import annotations

import json

import pytest

from app.services.json_stream import JsonArrayReader, JsonStreamError

DOC = [
    {"a": 1, "s": "héllo ✓ 漢字", "nested": {"list": [1, 2.5, None, True]}},
    {"b": "with, commas ] and [ brackets", "esc": 'quote " backslash \\ \u00e9'},
    [1, 2],
    12345678901234567890,
    -0.5e-3,
    "text",
    None,
]


def _read(data: bytes, size: int, **kw) -> list:
    reader = JsonArrayReader(**kw)
    out: list = []
    for i in range(0, len(data), size):
        out += list(reader.feed(data[i : i + size]))
    out += list(reader.close())
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_any_chunking_gives_the_same_elements(size):
    data = (
        "\ufeff \n[ " + ",\n ".join(json.dumps(x, ensure_ascii=False) for x in DOC) + " ]\n "
    ).encode()
    assert _read(data, size) == DOC


def test_elements_come_out_as_soon_as_they_are_complete():
    assert _read(b"[]", 1) == []
    reader = JsonArrayReader()
    assert list(reader.feed(b'[{"x": 1}, {"x": 2}, 12')) == [{"x": 1}, {"x": 2}]
    assert list(reader.feed(b"3]")) == [123]  # a number waits for what follows it
    assert list(reader.close()) == []
    assert reader.count == 3


@pytest.mark.parametrize(
    "data,message",
    [
        (b'{"a": 1}', "not a JSON array"),
        (b"", "ends before the array does"),
        (b'[{"a": 1}, {"b": ', "ends in the middle of element 2"),
        (b'[{"a": 1}, {"b": "unterminated', "ends in the middle of element 2"),
        (b'[{"a": 1}, ', "ends before the array does, after 1"),
        (b'[{"a": 1}', "ends before the array does, after 1"),
        (b'[{"a": 1} {"b": 2}]', "expected ',' or ']' after element 1"),
        (b'[{"a": 1},]', "invalid JSON after 1 elements"),
        (b'[{"a": NaN}]', "invalid JSON after 0 elements"),
        (b'[{"a": 1}] trailing', "unexpected data after the end"),
        (b'[{"a": "\xff"}]', "not UTF-8"),
    ],
)
def test_errors_say_where(data, message):
    with pytest.raises(JsonStreamError, match=message):
        _read(data, 3)


def test_an_oversized_element_is_refused_without_buffering_the_file():
    reader = JsonArrayReader(max_element=1000)
    with pytest.raises(JsonStreamError, match="larger than 1000"):
        list(reader.feed(b'[{"a": "' + b"x" * 5000))
