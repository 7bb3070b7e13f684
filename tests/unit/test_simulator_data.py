"""The simulator's data model: deterministic, complete, filterable, mutable."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from extractor.simulator.data import ListFilter, SchoolData
from extractor.simulator.entities import BY_NAME, LIST_ENTITIES
from extractor.simulator.values import format_datetime, truncate_us

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROWS = {e.name: 37 for e in LIST_ENTITIES} | {"students": 1_234, "lookups": 9}
DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?$")


def parse_api_datetime(text: str) -> datetime:
    """Naive UTC text with 0-7 decimals -> aware datetime, truncated to microseconds."""
    base, _, frac = text.partition(".")
    value = datetime.fromisoformat(base).replace(tzinfo=UTC)
    return value + timedelta(microseconds=int((frac + "000000")[:6]))


def all_items(data: SchoolData, entity: str, flt: ListFilter = ListFilter()) -> list[Any]:  # noqa: B008
    items: list[Any] = []
    page = 1
    while True:
        doc = orjson.loads(data.list_page(entity, page, 100, flt))
        if not doc["Items"]:
            return items
        items.extend(doc["Items"])
        page += 1


@pytest.fixture(scope="module")
def data() -> SchoolData:
    return SchoolData(seed=7, rows=ROWS, now=NOW)


def test_same_seed_serves_the_same_bytes() -> None:
    a = SchoolData(seed=3, rows=ROWS, now=NOW)
    b = SchoolData(seed=3, rows=ROWS, now=NOW)
    c = SchoolData(seed=4, rows=ROWS, now=NOW)
    flt = ListFilter()
    assert a.list_page("students", 2, 500, flt) == b.list_page("students", 2, 500, flt)
    assert a.list_page("students", 2, 500, flt) != c.list_page("students", 2, 500, flt)


def test_envelope_counts_items_and_pages(data: SchoolData) -> None:
    doc = orjson.loads(data.list_page("students", 3, 500, ListFilter()))
    assert {k: doc[k] for k in ("PageSize", "PageNumber", "Total", "NumberOfPages")} == {
        "PageSize": 500,
        "PageNumber": 3,
        "Total": 1_234,
        "NumberOfPages": 3,
    }
    assert len(doc["Items"]) == 234
    past = orjson.loads(data.list_page("students", 4, 500, ListFilter()))
    assert past["Items"] == [] and past["Total"] == 1_234


@pytest.mark.parametrize("entity", [e.name for e in LIST_ENTITIES])
def test_pages_hold_every_row_once_in_id_order_with_list_fields_only(
    data: SchoolData, entity: str
) -> None:
    items = all_items(data, entity)
    ids = [row["Id"] for row in items]
    assert ids == sorted(set(ids)) == data.ids(entity)
    list_fields = {f.name for f in BY_NAME[entity].list_fields}
    all_fields = {f.name for f in BY_NAME[entity].fields}
    for row in items:
        assert set(row) == list_fields
    truth = list(data.ground_truth(entity))
    assert [r["Id"] for r in truth] == ids
    for listed, full in zip(items, truth, strict=True):
        assert set(full) == all_fields
        assert {k: full[k] for k in listed} == listed  # a list row is a subset of its detail
        assert orjson.loads(data.detail(entity, listed["Id"]) or b"null") == full


def test_values_are_realistic(data: SchoolData) -> None:
    truth = list(data.ground_truth("students"))
    values = [v for row in truth for v in row.values()]
    assert None in values, "some nulls"
    assert any(isinstance(v, str) and not v.isascii() for v in values), "non-ASCII text"
    assert any(v == [] for v in values), "empty lists"
    lookups = [row["Program"] for row in truth if row["Program"] is not None]
    assert lookups and set(lookups[0]) == {"Id", "AttributeId", "Name"}
    customs = [row["CustomAttributeValues"] for row in truth if row["CustomAttributeValues"]]
    assert customs and all(k.startswith("custom_attribute_") for k in customs[0])
    assert all(v is None or isinstance(v, str) for c in customs for v in c.values())
    digits = set()
    for row in truth:
        for key in ("ModifyDate", "CreateDate", "JoinDate"):
            if row[key] is not None:
                assert DT.match(row[key]), row[key]
                digits.add(len(row[key].partition(".")[2]))
    assert digits == set(range(8)), "DateTimes with 0 to 7 fractional digits"


def test_format_datetime_round_trips_at_each_precision() -> None:
    us = 1_700_000_000_123_456
    for digits in range(8):
        text = format_datetime(truncate_us(us, digits), digits).decode()
        parsed = parse_api_datetime(text)
        assert parsed == datetime.fromtimestamp(truncate_us(us, digits) / 1e6, UTC).replace(
            microsecond=truncate_us(us, digits) % 1_000_000
        )
        assert len(text.partition(".")[2]) == digits


def test_detail_of_unknown_id_is_none(data: SchoolData) -> None:
    first = data.ids("students")[0]
    assert data.detail("students", first + 1) is None  # not on the Id grid
    assert data.detail("students", first - 7) is None
    assert data.detail("students", 10**15) is None


def test_modify_date_filters_are_inclusive(data: SchoolData) -> None:
    truth = list(data.ground_truth("companies"))
    dates = sorted(parse_api_datetime(r["ModifyDate"]) for r in truth)
    lo, hi = dates[5], dates[20]
    flt = ListFilter(modify_from=lo, modify_to=hi)
    expected = [r["Id"] for r in truth if lo <= parse_api_datetime(r["ModifyDate"]) <= hi]
    assert [r["Id"] for r in all_items(data, "companies", flt)] == expected
    assert data.count("companies", flt) == len(expected) >= 16


def test_year_and_entity_type_filters(data: SchoolData) -> None:
    truth = list(data.ground_truth("students"))
    got = all_items(data, "students", ListFilter(year=2020))
    assert [r["Id"] for r in got] == [r["Id"] for r in truth if r["GraduationYearId"] == 2020]
    assert got
    notes = list(data.ground_truth("notes"))
    got_notes = all_items(data, "notes", ListFilter(entity_type_id=2201))
    assert [r["Id"] for r in got_notes] == [
        r["Id"] for r in notes if r["PrimaryEntityTypeID"] == 2201
    ]


def test_filters_that_do_not_apply_are_ignored(data: SchoolData) -> None:
    assert data.count("lookups", ListFilter(modify_from=NOW)) == ROWS["lookups"]
    assert data.count("companies", ListFilter(year=1999)) == ROWS["companies"]


def test_mutations_edit_add_and_delete() -> None:
    data = SchoolData(seed=11, rows=ROWS, now=NOW)
    before = {r["Id"]: r for r in data.ground_truth("contacts")}
    later = NOW + timedelta(days=2)
    result = data.mutate("contacts", modify=5, add=3, delete=2, now=later)
    after = {r["Id"]: r for r in data.ground_truth("contacts")}
    assert len(result.modified) == 5 and len(result.added) == 3 and len(result.deleted) == 2
    assert set(after) == (set(before) - set(result.deleted)) | set(result.added)
    assert min(result.added) > max(before)
    for id_ in result.modified:
        assert after[id_] != before[id_]
        assert parse_api_datetime(after[id_]["ModifyDate"]) == later
    for id_ in set(before) - set(result.modified) - set(result.deleted):
        assert after[id_] == before[id_]
    changed = ListFilter(modify_from=later - timedelta(seconds=1))
    assert [r["Id"] for r in all_items(data, "contacts", changed)] == sorted(
        result.modified + result.added
    )
    for id_ in result.deleted:
        assert data.detail("contacts", id_) is None


def test_mutate_refuses_impossible_requests() -> None:
    data = SchoolData(seed=1, rows=ROWS, now=NOW)
    with pytest.raises(ValueError, match="only"):
        data.mutate("events", modify=30, delete=30, now=NOW)
    with pytest.raises(ValueError, match=">= 0"):
        data.mutate("events", add=-1, now=NOW)
    with pytest.raises(KeyError):
        data.count("nonsense")


def test_lookup_options_are_bare_arrays(data: SchoolData) -> None:
    lookup = data.ids("lookups")[0]
    options = orjson.loads(data.lookup_options(lookup) or b"null")
    assert isinstance(options, list) and options
    assert all(set(o) == {"Id", "Name"} for o in options)
    assert data.lookup_options(10**9) is None


def test_scale_sets_default_row_counts() -> None:
    data = SchoolData(seed=1, scale=0.01, now=NOW)
    assert data.count("students") == round(BY_NAME["students"].default_rows * 0.01)
    with pytest.raises(ValueError, match="unknown entities"):
        SchoolData(rows={"teachers": 3}, now=NOW)


def test_warm_renders_every_template_pool_up_front() -> None:
    data = SchoolData(seed=2, rows=ROWS, now=NOW)
    tables = data._tables.values()
    assert all(t._pool_list is None for t in tables)
    data.warm()
    assert all(t._pool_list is not None and t._pool_detail is not None for t in tables)


def test_drift_adds_fields_and_retypes_values() -> None:
    data = SchoolData(seed=3, rows=ROWS, now=NOW)
    before = {r["Id"]: r for r in data.ground_truth("students")}
    data.drift("students", new_fields={"Pronouns": "they/them"}, retype=("RoleId",))
    after = list(data.ground_truth("students"))
    assert all(r["Pronouns"] == "they/them" for r in after)
    for row in after:
        old = before[row["Id"]]["RoleId"]
        assert row["RoleId"] == (None if old is None else str(old))
    listed = orjson.loads(data.list_page("students", 1, 10, ListFilter()))["Items"]
    assert all("Pronouns" in r and not isinstance(r["RoleId"], int) for r in listed)
    with pytest.raises(ValueError, match="cannot retype"):
        data.drift("students", retype=("Id",))
