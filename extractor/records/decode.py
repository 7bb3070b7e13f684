"""Exact JSON decoding for the careful path, raw-text rendering, and the page errors.

The careful path needs more than orjson gives: numbers exactly as written (orjson turns
integers >= 2**64 into floats and ``1.50`` into ``1.5``) so that a bad value's raw text is
the value sent, and duplicate keys made visible (every parser silently keeps the last).
The stdlib decoder with hooks gives both at ~1.5x orjson's cost, which only odd batches pay.

What counts as valid JSON is orjson's opinion, and pyarrow's reader agrees on what the
fast path meets: no NaN/Infinity, no lone surrogate escapes, no raw control characters in
strings, no trailing data, UTF-8 only. A UTF-8 byte order mark is stripped beforehand.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from extractor.errors import SchemaError, TransientError

_BOM = b"\xef\xbb\xbf"


class MalformedPageError(TransientError):
    """A body that is not valid JSON: truncated or garbled in transit, so worth retrying.

    ``page_index`` is the body's position in the batch handed to the converter.
    """

    def __init__(self, message: str, *, page_index: int) -> None:
        super().__init__(message)
        self.page_index = page_index


class PageShapeError(SchemaError):
    """Valid JSON that is not the shape the endpoint is declared to answer with.

    ``page_index`` is the body's position in the batch handed to the converter.
    """

    def __init__(self, message: str, *, page_index: int) -> None:
        super().__init__(message)
        self.page_index = page_index


class JsonFloat(str):
    """A JSON number with a fraction or exponent, kept as written."""

    __slots__ = ()


class DupDict(dict[str, Any]):
    """A JSON object in which a key occurs more than once (the dict keeps the last value);
    ``pairs`` keeps every (key, value) in order."""

    __slots__ = ("pairs",)
    pairs: list[tuple[str, Any]]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        dup = DupDict(out)
        dup.pairs = pairs
        return dup
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strip_bom(body: bytes) -> bytes:
    """The body without a leading UTF-8 byte order mark."""
    return body[3:] if body[:3] == _BOM else body


def decode(body: bytes, index: int) -> Any:
    """Parse one body exactly (see the module docstring); MalformedPageError if invalid.

    Objects are dicts (a DupDict when a key repeats), integers exact ints, other numbers
    JsonFloat strings.
    """
    try:
        text = body.decode("utf-8")
        if "\\ud" in text or "\\uD" in text:
            orjson.loads(body)  # the stdlib decoder lets lone surrogate escapes through
        return json.loads(
            text, parse_float=JsonFloat, parse_constant=_no_constants, object_pairs_hook=_object
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError too
        raise MalformedPageError(
            f"body {index} is not valid JSON ({len(body)} bytes): {exc}", page_index=index
        ) from None


def kind_of(value: Any) -> str:
    """A JSON kind for messages: null, a boolean, a number, a string, an array, an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, JsonFloat)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def dump(value: Any) -> str:
    """Compact JSON text of a decoded value, numbers exactly as they were written."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    t = type(value)
    if t is str:
        return json.dumps(value, ensure_ascii=False)
    if t is JsonFloat:
        return str.__str__(value)
    if t is int:
        return int.__repr__(value)
    if t is list:
        return dump_list(value)
    pairs = value.pairs if t is DupDict else value.items()
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dump(v) for k, v in pairs) + "}"


def dump_list(values: list[Any]) -> str:
    """Compact JSON text of an array of decoded values."""
    return "[" + ",".join(map(dump, values)) + "]"
