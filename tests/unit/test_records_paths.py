"""Property tests: the fast and careful paths agree on any clean page and match an
independent reading of the JSON; one bad value anywhere costs only that cell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from records_support import EVERY_TYPE, assert_same, both, make_schema, raw_of

from extractor.records.schema import ListOf, MapOf, Scalar, StructOf, TypeNode, parse_type

SCHEMA = make_schema(EVERY_TYPE)
NODES: dict[str, TypeNode] = {name: parse_type(spec) for name, spec in EVERY_TYPE.items()}
INT_BOUNDS = {"Byte": 2**15, "Int16": 2**15, "Int32": 2**31, "Int64": 2**63}

# Any text JSON can carry: no lone surrogates (orjson cannot encode them).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@st.composite
def datetimes(draw: st.DrawFn) -> tuple[str, datetime]:
    """A 12Twenty DateTime string and the instant it means, truncated to microseconds."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    digits = draw(st.integers(0, 7))
    seventh = draw(st.integers(0, 9))
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if digits:
        text += "." + (f"{moment.microsecond:06d}{seventh}")[:digits]
    kept = int((f"{moment.microsecond:06d}")[: min(digits, 6)].ljust(6, "0"))
    text += draw(st.sampled_from(["", "", "Z"]))
    return text, moment.replace(microsecond=kept, tzinfo=UTC)


def values(node: TypeNode) -> st.SearchStrategy[tuple[Any, Any]]:
    """(JSON value, the Python value Arrow should hold) for a type, nulls included."""
    null: st.SearchStrategy[tuple[Any, Any]] = st.just((None, None))
    if isinstance(node, Scalar):
        if node.name in INT_BOUNDS:
            bound = INT_BOUNDS[node.name]
            return null | st.integers(-bound, bound - 1).map(lambda v: (v, v))
        if node.name == "String":
            return null | TEXT.map(lambda v: (v, v))
        if node.name == "Boolean":
            return null | st.booleans().map(lambda v: (v, v))
        return null | datetimes()
    if isinstance(node, ListOf):
        items = st.lists(values(node.item), max_size=3)
        return null | items.map(lambda pairs: ([p[0] for p in pairs], [p[1] for p in pairs]))
    if isinstance(node, StructOf):
        return null | _objects(node)
    assert isinstance(node, MapOf)
    raise AssertionError("maps take the careful path only")


def _objects(node: StructOf) -> st.SearchStrategy[tuple[Any, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> tuple[Any, Any]:
        present = draw(st.lists(st.sampled_from([n for n, _ in node.fields]), unique=True))
        sent: dict[str, Any] = {}
        expected: dict[str, Any] = dict.fromkeys((n for n, _ in node.fields))
        for name in present:
            sent[name], expected[name] = draw(values(dict(node.fields)[name]))
        return sent, expected

    return build()


@st.composite
def items(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """An item with a random subset of fields in a random order, and its expected row."""
    names = draw(st.permutations(list(EVERY_TYPE)))
    present = names[: draw(st.integers(0, len(names)))]
    sent: dict[str, Any] = {}
    expected: dict[str, Any] = dict.fromkeys(EVERY_TYPE)
    for name in present:
        sent[name], expected[name] = draw(values(NODES[name]))
    expected["_raw"] = None
    return sent, expected


def _page(sent: list[dict[str, Any]], number: int) -> bytes:
    return orjson.dumps(
        {"PageSize": 500, "PageNumber": number, "Total": 99, "NumberOfPages": 3, "Items": sent}
    )


PAGES = st.lists(st.lists(items(), max_size=6), min_size=1, max_size=3)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(PAGES)
def test_clean_pages_take_the_fast_path_and_both_paths_agree(
    pages: list[list[tuple[dict[str, Any], dict[str, Any]]]],
) -> None:
    bodies = [_page([s for s, _ in page], k + 1) for k, page in enumerate(pages)]
    fast, slow = both(SCHEMA, bodies)
    assert fast.path == "fast", fast.fallback_reason
    assert_same(fast, slow)
    assert fast.record_batch.to_pylist() == [e for page in pages for _, e in page]
    assert [m.items for m in fast.pages] == [len(page) for page in pages]
    assert len(fast.problems) == 0 and len(slow.problems) == 0


WRONG = st.sampled_from(["abc", 1.5, 2**63, {"x": 1}, [1], True, "2020-02-30T00:00:00"])


def _fits(node: TypeNode, value: Any) -> bool:
    """Whether a WRONG value is not a bad value for ``node``: it fits (a string in a
    String), or it is an object with undeclared keys (kept typed, reported otherwise)."""
    if isinstance(node, Scalar):
        if node.name in INT_BOUNDS:
            bound = INT_BOUNDS[node.name]
            return type(value) is int and -bound <= value < bound
        if node.name == "String":
            return isinstance(value, str)
        if node.name == "Boolean":
            return isinstance(value, bool)
        return False  # no WRONG value is a valid DateTime
    if isinstance(node, ListOf):
        return isinstance(value, list) and all(_fits(node.item, v) for v in value)
    return isinstance(node, StructOf) and isinstance(value, dict)


@SETTINGS
@given(PAGES, st.data())
def test_one_bad_value_costs_only_its_cell(
    pages: list[list[tuple[dict[str, Any], dict[str, Any]]]], data: st.DataObject
) -> None:
    flat = [pair for page in pages for pair in page]
    if not flat:
        return
    row = data.draw(st.integers(0, len(flat) - 1))
    field = data.draw(st.sampled_from(list(EVERY_TYPE)))
    wrong = data.draw(WRONG)
    if _fits(NODES[field], wrong):
        return
    sent, expected = flat[row]
    flat[row] = (sent | {field: wrong}, expected | {field: None})
    bodies = [_page([s for s, _ in flat], 1)]
    fast, slow = both(SCHEMA, bodies)
    assert_same(fast, slow)
    got = fast.record_batch.to_pylist()
    for k, (_, exp) in enumerate(flat):
        assert {n: v for n, v in got[k].items() if n != "_raw"} == {
            n: v for n, v in exp.items() if n != "_raw"
        }
    assert raw_of(fast, row) == {field: orjson.dumps(wrong).decode()}
    assert fast.problems.count(field, "bad_value") == 1
    assert fast.problems.count() == 1
