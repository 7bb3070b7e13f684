"""Typed values: per-value checks for the careful path, DateTime conversion for both paths.

A value "fits" a declared type exactly when pyarrow's JSON reader, given the same type,
would read it without complaint, and the DateTime rules below hold; the fast path relies
on the reader for the first half and on :func:`finish` for the second, the careful path
on :func:`compile_checker` and the same :func:`finish`. Both then agree on every value.

DateTime: ``YYYY-MM-DDThh:mm:ss`` with 0 to 7 fractional digits, naive UTC, a trailing
``Z`` tolerated, a real calendar date from year 1 (.NET's ``DateTime.MinValue``,
``0001-01-01T00:00:00``, is kept). Digits past the sixth (100 ns) are truncated, never
rounded. Anything else (an offset, a space for the T, a date alone) does not fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from extractor.records.decode import DupDict, kind_of
from extractor.records.problems import (
    BAD_VALUE,
    CASE_VARIANT,
    DUPLICATE_KEY,
    UNKNOWN_SUBFIELD,
)
from extractor.records.schema import ListOf, Scalar, StructOf, TypeNode, arrow_type

_TS_NAIVE = pa.timestamp("us")
_TS_UTC = pa.timestamp("us", tz="UTC")
_YEAR = "([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001-9999
_DT_BODY = _YEAR + r"-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,7})?Z?"
_DT_RE2 = "^" + _DT_BODY + "$"  # Arrow's RE2: ^ and $ anchor the whole value
_DT_PY = re.compile(_DT_BODY, re.ASCII)  # used with fullmatch


class Misfit(Exception):
    """A value does not fit its declared type; ``kind`` is the problem kind to report."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class BadDateTime(ValueError):
    """A DateTime string out of the 12Twenty format (vectorised check)."""


# A checker returns the value shaped for its type (DateTimes still strings, unknown nested
# keys dropped), raises Misfit if it does not fit, and appends lossless oddities (kinds) to
# its second argument.
Checker = Callable[[Any, list[str]], Any]


def read_type(node: TypeNode) -> pa.DataType:
    """The Arrow type values are read as before :func:`finish`: DateTime as string."""
    if isinstance(node, Scalar):
        return pa.string() if node.name == "DateTime" else arrow_type(node)
    if isinstance(node, ListOf):
        return pa.list_(read_type(node.item))
    if isinstance(node, StructOf):
        return pa.struct([pa.field(n, read_type(t)) for n, t in node.fields])
    return arrow_type(node)


def has_datetime(node: TypeNode) -> bool:
    """Whether ``node`` is or nests a DateTime (and so needs :func:`finish`)."""
    if isinstance(node, Scalar):
        return node.name == "DateTime"
    if isinstance(node, ListOf):
        return has_datetime(node.item)
    if isinstance(node, StructOf):
        return any(has_datetime(t) for _, t in node.fields)
    return False


# ---------------------------------------------------------------------------------------
# Per-value checks (careful path)


def compile_checker(node: TypeNode) -> Checker:
    """The checker of values of type ``node``."""
    if isinstance(node, Scalar):
        return _scalar_checker(node)
    if isinstance(node, ListOf):
        return _list_checker(compile_checker(node.item))
    if isinstance(node, StructOf):
        return _struct_checker(node)
    return _check_map


def _list_checker(item: Checker) -> Checker:
    def check_list(value: Any, soft: list[str]) -> Any:
        if value is None:
            return None
        if type(value) is not list:
            raise Misfit(BAD_VALUE, f"expected an array, got {kind_of(value)}")
        return [item(v, soft) for v in value]

    return check_list


def _struct_checker(node: StructOf) -> Checker:
    subs = {name: compile_checker(t) for name, t in node.fields}
    names = frozenset(subs)
    fold = {name.casefold(): name for name in subs}

    def check_struct(value: Any, soft: list[str]) -> Any:
        if value is None:
            return None
        if type(value) is not dict:
            if isinstance(value, DupDict):
                raise Misfit(DUPLICATE_KEY, "a key of the object occurs more than once")
            raise Misfit(BAD_VALUE, f"expected an object, got {kind_of(value)}")
        if names.issuperset(value):
            return {k: subs[k](v, soft) for k, v in value.items()}
        out: dict[str, Any] = {}
        for key, v in value.items():
            name = key if key in subs else fold.get(key.casefold())
            if name is None or (name != key and name in value):
                soft.append(UNKNOWN_SUBFIELD)
                continue
            if name != key:
                soft.append(CASE_VARIANT)
            out[name] = subs[name](v, soft)
        return out

    return check_struct


def _check_map(value: Any, soft: list[str]) -> Any:
    if value is None:
        return None
    if type(value) is not dict:
        if isinstance(value, DupDict):
            raise Misfit(DUPLICATE_KEY, "a key of the object occurs more than once")
        raise Misfit(BAD_VALUE, f"expected an object of strings, got {kind_of(value)}")
    for v in value.values():
        if v is not None and type(v) is not str:
            raise Misfit(BAD_VALUE, f"expected string values, got {kind_of(v)}")
    return value


def _scalar_checker(node: Scalar) -> Checker:
    name = node.name
    bounds = node.int_range
    if bounds is not None:
        lo, hi = bounds

        def check_int(value: Any, soft: list[str]) -> Any:
            if value is None or (type(value) is int and lo <= value <= hi):
                return value
            if type(value) is int:
                raise Misfit(BAD_VALUE, f"{value} is out of range for {name}")
            raise Misfit(BAD_VALUE, f"expected {name}, got {kind_of(value)}")

        return check_int
    if name == "DateTime":
        return _check_datetime
    expected = str if name == "String" else bool

    def check_type(value: Any, soft: list[str]) -> Any:
        if value is None or type(value) is expected:
            return value
        raise Misfit(BAD_VALUE, f"expected {name}, got {kind_of(value)}")

    return check_type


def _check_datetime(value: Any, soft: list[str]) -> Any:
    if value is None:
        return None
    if type(value) is not str:
        raise Misfit(BAD_VALUE, f"expected DateTime, got {kind_of(value)}")
    m = _DT_PY.fullmatch(value)
    if m is None:
        raise Misfit(BAD_VALUE, "expected YYYY-MM-DDThh:mm:ss[.fffffff] (naive UTC)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise Misfit(BAD_VALUE, f"not a valid DateTime: {exc}") from None
    return value


# ---------------------------------------------------------------------------------------
# DateTime conversion (both paths)


def finish(arr: pa.Array, node: TypeNode) -> pa.Array:
    """Turn the DateTime strings inside ``arr`` (of :func:`read_type`) into timestamps.

    Raises BadDateTime or pyarrow.ArrowInvalid if a value does not fit.
    """
    if isinstance(node, Scalar):
        return to_timestamp(arr) if node.name == "DateTime" else arr
    # flatten() rather than .values / .field(i): values hidden behind a null list or struct
    # (an empty string under a null object, say) must not reach the DateTime checks.
    if isinstance(node, ListOf):
        values = finish(arr.flatten(), node.item)
        lengths = pc.list_value_length(arr).fill_null(0)
        offsets = pa.concat_arrays(
            [pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())]
        )
        mask = arr.is_null() if arr.null_count else None
        return pa.ListArray.from_arrays(offsets, values, mask=mask)
    if isinstance(node, StructOf):
        children = [finish(c, t) for c, (_, t) in zip(arr.flatten(), node.fields, strict=True)]
        fields = [pa.field(n, c.type) for (n, _), c in zip(node.fields, children, strict=True)]
        mask = arr.is_null() if arr.null_count else None
        return pa.StructArray.from_arrays(children, fields=fields, mask=mask)
    return arr


def to_timestamp(arr: pa.Array) -> pa.Array:
    """12Twenty DateTime strings -> timestamp[us, UTC], vectorised.

    Checks the format, drops a trailing Z, truncates to microseconds (26 characters), casts
    to a naive timestamp (which rejects impossible dates) and relabels it UTC: a string
    without an offset cannot be cast to an aware type directly (PERF-NOTES trap 2).
    """
    if arr.null_count == len(arr):
        return pa.nulls(len(arr), _TS_UTC)
    if pc.any(pc.invert(pc.match_substring_regex(arr, _DT_RE2))).as_py():
        raise BadDateTime("a value is not YYYY-MM-DDThh:mm:ss[.fffffff]")
    if pc.any(pc.ends_with(arr, "Z")).as_py():
        arr = pc.utf8_rtrim(arr, characters="Z")
    arr = pc.utf8_slice_codeunits(arr, 0, 26)
    return arr.cast(_TS_NAIVE).view(_TS_UTC)
