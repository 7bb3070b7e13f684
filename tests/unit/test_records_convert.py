"""Page bytes -> Arrow: every type, nulls, drift kept and reported, bad values kept raw,
malformed pages classified; the fast and careful paths agree."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from records_support import (
    EVERY_TYPE,
    TS_UTC,
    assert_same,
    both,
    column,
    make_schema,
    page,
    raw_of,
    rows,
)

from extractor.errors import SchemaError, TransientError
from extractor.records import convert as C
from extractor.records.convert import Converter, MalformedPageError, PageMeta, PageShapeError
from extractor.records.schema import load_schema

SCHEMA = make_schema(EVERY_TYPE)


def _utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def full_item(k: int = 1) -> dict[str, Any]:
    return {
        "Id": 10_607_302_981_934 + k,
        "Small": -32768,
        "Year": 2018,
        "Count": 2**31 - 1,
        "Name": "Zoë Łukasz 李 😀",
        "Flag": True,
        "When": "2020-05-20T18:25:43.1234567",
        "Program": {"Id": 50083001, "AttributeId": 1000102, "Name": "Economics"},
        "Groups": [{"Id": 1, "Name": "Chess"}, {"Id": 2, "Name": "Études"}],
        "Owner": {"Id": 77},
        "CampaignIds": [1, 2**63 - 1],
        "Dates": ["2021-01-02T03:04:05", "0001-01-01T00:00:00"],
        "Location": {"City": "Zürich", "Zip": "8001", "Since": "2019-09-01T00:00:00Z"},
        "Addresses": [{"TypeId": 1, "Street": "1 Main St"}],
    }


FULL_ROW: dict[str, Any] = {
    "Id": 10_607_302_981_935,
    "Small": -32768,
    "Year": 2018,
    "Count": 2**31 - 1,
    "Name": "Zoë Łukasz 李 😀",
    "Flag": True,
    "When": _utc(2020, 5, 20, 18, 25, 43, 123456),
    "Program": {"Id": 50083001, "AttributeId": 1000102, "Name": "Economics"},
    "Groups": [{"Id": 1, "Name": "Chess"}, {"Id": 2, "Name": "Études"}],
    "Owner": {"Id": 77},
    "CampaignIds": [1, 2**63 - 1],
    "Dates": [_utc(2021, 1, 2, 3, 4, 5), _utc(1, 1, 1)],
    "Location": {"City": "Zürich", "Zip": "8001", "Since": _utc(2019, 9, 1)},
    "Addresses": [{"TypeId": 1, "Street": "1 Main St"}],
    "_raw": None,
}


# -- clean pages -------------------------------------------------------------------------


def test_every_type_converts_on_the_fast_path() -> None:
    fast, slow = both(SCHEMA, [page([full_item()])])
    assert fast.path == "fast" and fast.fallback_reason is None
    assert rows(fast) == [FULL_ROW]
    assert fast.record_batch.schema == Converter(SCHEMA).arrow_schema
    assert fast.record_batch.schema.field("When").type == TS_UTC
    assert len(fast.problems) == 0
    assert_same(fast, slow)


def test_nulls_missing_keys_and_empty_lists_are_null_or_empty() -> None:
    nulls = dict.fromkeys(EVERY_TYPE) | {"Id": 1}
    empty = {"Id": 2, "Groups": [], "CampaignIds": [], "Dates": [], "Addresses": []}
    partial = {"Id": 3, "Program": {"Id": 5}, "Location": {}, "Groups": [None]}
    fast, slow = both(SCHEMA, [page([nulls, empty, partial])])
    assert fast.path == "fast"
    assert_same(fast, slow)
    got = rows(fast)
    assert all(v is None for k, v in got[0].items() if k != "Id")
    assert got[1]["Groups"] == [] and got[1]["Dates"] == [] and got[1]["Name"] is None
    assert got[2]["Program"] == {"Id": 5, "AttributeId": None, "Name": None}
    assert got[2]["Location"] == {"City": None, "Zip": None, "Since": None}
    assert got[2]["Groups"] == [None]
    assert len(fast.problems) == 0


def test_an_empty_page_has_the_declared_columns_and_no_rows() -> None:
    fast, slow = both(SCHEMA, [page([], total=0)])
    assert fast.num_rows == 0 and fast.path == "fast"
    assert fast.record_batch.schema.names == [*EVERY_TYPE, "_raw"]
    assert fast.pages == (PageMeta(1, 500, 0, 1, 0),)
    assert_same(fast, slow)


def test_no_pages_is_an_empty_batch() -> None:
    converted = Converter(SCHEMA).convert_pages([])
    assert converted.num_rows == 0 and converted.pages == ()


def test_key_order_does_not_matter() -> None:
    """PERF-NOTES trap 5: values are looked up by name, never by position."""
    item = full_item()
    reversed_item = dict(reversed(list(item.items())))
    fast, slow = both(SCHEMA, [page([item, reversed_item])])
    assert fast.path == "fast"
    assert_same(fast, slow)
    assert rows(fast)[0] == rows(fast)[1]


def test_non_ascii_raw_and_escaped_is_kept_intact() -> None:
    text = "José Núñez — 李 ✓ 😀 \u0000 tab\t"
    items = b'[{"Name":"\\u00e9\\ud83d\\ude00"},{"Name":' + orjson.dumps(text) + b"}]"
    body = page([]).replace(b'"Items":[]', b'"Items":' + items)
    fast, slow = both(SCHEMA, [body])
    assert fast.path == "fast"
    assert column(fast, "Name") == ["é😀", text]
    assert_same(fast, slow)


def test_pages_batch_in_order_with_their_envelopes() -> None:
    pages = [page([full_item(k) for k in range(3)], number=1, total=5),
             page([full_item(k) for k in range(3, 5)], number=2, total=5)]  # fmt: skip
    fast, slow = both(SCHEMA, pages)
    assert fast.path == "fast"
    assert column(fast, "Id") == [10_607_302_981_934 + k for k in range(5)]
    assert fast.pages == (PageMeta(1, 500, 5, 1, 3), PageMeta(2, 500, 5, 1, 2))
    assert_same(fast, slow)


def test_many_blocks_are_stitched_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path reads a batch in several blocks (one chunk each) on all cores."""
    monkeypatch.setattr(C, "_MIN_BLOCK", 1)
    pages = [page([full_item(p * 10 + k) for k in range(10)], number=p + 1) for p in range(12)]
    fast, slow = both(SCHEMA, pages)
    assert fast.path == "fast"
    assert column(fast, "Id") == [10_607_302_981_934 + k for k in range(120)]
    assert [m.page_number for m in fast.pages] == list(range(1, 13))
    assert_same(fast, slow)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_pretty_printed_body_stays_on_the_fast_path(newline: bytes) -> None:
    body = orjson.dumps(orjson.loads(page([full_item()])), option=orjson.OPT_INDENT_2)
    body = body.replace(b"\n", newline)
    fast, slow = both(SCHEMA, [page([full_item(0)]), body])
    assert fast.path == "fast"
    assert rows(fast)[1] == FULL_ROW
    assert_same(fast, slow)


def test_a_byte_order_mark_is_ignored_by_both_paths() -> None:
    """pyarrow's reader accepts a BOM and orjson refuses it: both paths strip it."""
    fast, slow = both(SCHEMA, [b"\xef\xbb\xbf" + page([full_item()])])
    assert fast.path == "fast"
    assert rows(fast) == [FULL_ROW]
    assert_same(fast, slow)


def test_real_entity_schemas_convert_their_list_pages() -> None:
    contacts = load_schema("contacts")
    item = {"Id": 60_000_011, "FirstName": "Aoife", "CompanyId": 50_000_013,
            "IsPrimary": False, "AlumniGraduationYear": 2018,
            "CreateDate": "2020-03-16T10:00:00.123", "ModifyDate": "2021-01-02T03:04:05.1234567",
            "Location": {"AddressLine1": "1 Rue", "ZipCode": "75001", "CountryName": "France"}}  # fmt: skip
    fast, slow = both(contacts, [page([item])])
    assert fast.path == "fast"
    assert_same(fast, slow)
    row = rows(fast)[0]
    assert row["ModifyDate"] == _utc(2021, 1, 2, 3, 4, 5, 123456)
    assert row["Location"]["CityName"] is None
    assert row["AlumniGraduationYear"] == 2018


# -- DateTime ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-05-20T18:25:43", _utc(2020, 5, 20, 18, 25, 43)),
        ("2020-05-20T18:25:43.1", _utc(2020, 5, 20, 18, 25, 43, 100000)),
        ("2020-05-20T18:25:43.12", _utc(2020, 5, 20, 18, 25, 43, 120000)),
        ("2020-05-20T18:25:43.123", _utc(2020, 5, 20, 18, 25, 43, 123000)),
        ("2020-05-20T18:25:43.1234", _utc(2020, 5, 20, 18, 25, 43, 123400)),
        ("2020-05-20T18:25:43.12345", _utc(2020, 5, 20, 18, 25, 43, 123450)),
        ("2020-05-20T18:25:43.123456", _utc(2020, 5, 20, 18, 25, 43, 123456)),
        ("2020-05-20T18:25:43.1234567", _utc(2020, 5, 20, 18, 25, 43, 123456)),
        ("2020-05-20T18:25:43.9999999", _utc(2020, 5, 20, 18, 25, 43, 999999)),  # truncated
        ("2020-05-20T18:25:43Z", _utc(2020, 5, 20, 18, 25, 43)),
        ("2020-05-20T18:25:43.1234567Z", _utc(2020, 5, 20, 18, 25, 43, 123456)),
        ("2020-05-20T18:25:43.5Z", _utc(2020, 5, 20, 18, 25, 43, 500000)),
        ("0001-01-01T00:00:00", _utc(1, 1, 1)),
        ("9999-12-31T23:59:59.9999999", _utc(9999, 12, 31, 23, 59, 59, 999999)),
        ("2000-02-29T00:00:00", _utc(2000, 2, 29)),
    ],
)
def test_datetimes_truncate_to_microseconds_as_utc(text: str, expected: datetime) -> None:
    fast, slow = both(SCHEMA, [page([{"When": text, "Dates": [text]}])])
    assert fast.path == "fast"
    assert column(fast, "When") == [expected]
    assert column(fast, "Dates") == [[expected]]
    assert_same(fast, slow)


BAD_DATETIMES = [
    "2020-02-30T00:00:00",  # no such day
    "2021-02-29T00:00:00",
    "2020-01-01T24:00:00",
    "2020-01-01T23:59:60",
    "2020-13-01T00:00:00",
    "0000-01-01T00:00:00",  # before .NET's DateTime.MinValue
    "2020-05-20 18:25:43",  # a space for the T
    "2020-05-20",
    "2020-05-20T18:25",
    "2020-05-20T18:25:43.",
    "2020-05-20T18:25:43.12345678",  # 8 digits
    "2020-05-20T18:25:43+02:00",
    "2020-05-20T18:25:43ZZ",
    "2020-05-20t18:25:43",
    " 2020-05-20T18:25:43",
    "2020-05-20T18:25:43\n",
    "\uff12\uff10\uff12\uff10-05-20T18:25:43",  # full-width digits
    "",
]


@pytest.mark.parametrize("text", BAD_DATETIMES)
def test_bad_datetimes_are_kept_raw_and_reported(text: str) -> None:
    items = [{"Id": 1, "When": "2020-01-01T00:00:00"}, {"Id": 2, "When": text}]
    fast, slow = both(SCHEMA, [page(items)])
    assert fast.path == "slow" and fast.fallback_reason
    assert_same(fast, slow)
    assert column(fast, "When") == [_utc(2020, 1, 1), None]
    assert column(fast, "Id") == [1, 2]
    assert raw_of(fast, 1) == {"When": orjson.dumps(text).decode()}
    assert fast.problems.count("When", "bad_value") == 1


def test_a_bad_datetime_inside_a_list_or_object_keeps_the_whole_value_raw() -> None:
    items = [{"Dates": ["2020-01-01T00:00:00", "2020-02-30T00:00:00"]},
             {"Location": {"City": "Oslo", "Since": "yesterday"}}]  # fmt: skip
    fast, _ = both(SCHEMA, [page(items)])
    assert column(fast, "Dates") == [None, None]
    assert column(fast, "Location") == [None, None]
    assert raw_of(fast, 0) == {"Dates": '["2020-01-01T00:00:00","2020-02-30T00:00:00"]'}
    assert raw_of(fast, 1) == {"Location": '{"City":"Oslo","Since":"yesterday"}'}


# -- values that do not fit ---------------------------------------------------------------

BAD_VALUES: list[tuple[str, bytes, str]] = [
    ("Count", b'"abc"', "expected Int32, got a string"),
    ("Count", b'"12"', "expected Int32, got a string"),
    ("Count", b"1.5", "expected Int32, got a number"),
    ("Count", b"1.0", "expected Int32, got a number"),
    ("Count", b"1e2", "expected Int32, got a number"),
    ("Count", b"2147483648", "out of range for Int32"),
    ("Count", b"true", "expected Int32, got a boolean"),
    ("Small", b"32768", "out of range for Int16"),
    ("Year", b"-32769", "out of range for Byte"),
    ("Id", b"9223372036854775808", "out of range for Int64"),
    ("Id", b"-9223372036854775809", "out of range for Int64"),
    ("Id", b"18446744073709551617", "out of range for Int64"),  # orjson would make it a float
    ("Id", b"123456789012345678901234567890", "out of range for Int64"),
    ("Id", b"1.50", "got a number"),
    ("Name", b'{"First":"Ann"}', "expected String, got an object"),
    ("Name", b"12", "expected String, got a number"),
    ("Name", b"[]", "expected String, got an array"),
    ("Name", b"false", "expected String, got a boolean"),
    ("Flag", b'"true"', "expected Boolean, got a string"),
    ("Flag", b"1", "expected Boolean, got a number"),
    ("When", b"1589999143", "expected DateTime, got a number"),
    ("Program", b'"Economics"', "expected an object, got a string"),
    ("Program", b'{"Id":"50083001","Name":"Economics"}', "expected Int64, got a string"),
    ("Program", b"[1]", "expected an object, got an array"),
    ("Groups", b'{"Id":1,"Name":"Chess"}', "expected an array, got an object"),
    ("Groups", b'[{"Id":1.5,"Name":"Chess"}]', "expected Int64, got a number"),
    ("CampaignIds", b'[1,"2"]', "expected Int64, got a string"),
    ("Owner", b"77", "expected an object, got a number"),
    ("Addresses", b'[{"TypeId":"home"}]', "expected Int32, got a string"),
    ("Location", b'"Oslo"', "expected an object, got a string"),
]


@pytest.mark.parametrize(("field", "raw", "detail"), BAD_VALUES)
def test_a_bad_value_keeps_its_row_and_raw_text_and_is_reported(
    field: str, raw: bytes, detail: str
) -> None:
    """Never a crash, never a silent null: typed cell NULL, raw text exact, one problem."""
    clean = full_item(0)
    bad = (
        b'{"Id":' + raw + b"}"
        if field == "Id"
        else b'{"Id":5,"' + field.encode() + b'":' + raw + b"}"
    )
    body = page([clean, {"Id": 5}]).replace(b'{"Id":5}', bad)
    fast, slow = both(SCHEMA, [body])
    assert_same(fast, slow)
    assert fast.path == "slow"
    assert fast.num_rows == 2
    assert rows(fast)[0] == FULL_ROW | {"Id": clean["Id"]}
    assert column(fast, field)[1] is None
    assert raw_of(fast, 1) == {field: raw.decode()}
    problems = list(fast.problems)
    assert [(p.field, p.kind, p.count) for p in problems] == [(field, "bad_value", 1)]
    assert detail in problems[0].detail
    assert problems[0].example == raw.decode()


def test_every_bad_value_in_one_row_is_kept() -> None:
    item = {"Id": 1, "Count": "abc", "Flag": "yes", "Name": 5}
    converted = Converter(SCHEMA).convert_pages([page([item])])
    assert raw_of(converted, 0) == {"Count": '"abc"', "Flag": '"yes"', "Name": "5"}
    assert column(converted, "Id") == [1]
    assert converted.problems.count(kind="bad_value") == 3


def test_bad_values_are_counted_per_field() -> None:
    items = [{"Id": k, "Count": "n/a" if k % 2 else k} for k in range(10)]
    converted = Converter(SCHEMA).convert_pages([page(items)])
    assert converted.problems.count("Count", "bad_value") == 5
    assert column(converted, "Count") == [k if k % 2 == 0 else None for k in range(10)]
    assert [raw_of(converted, k) is not None for k in range(10)] == [k % 2 == 1 for k in range(10)]


def test_byte_accepts_a_year() -> None:
    converted = Converter(SCHEMA).convert_pages([page([{"Year": 2018}])])
    assert converted.path == "fast"
    assert column(converted, "Year") == [2018]


# -- fields the schema does not declare ----------------------------------------------------


def test_an_unknown_field_is_kept_as_raw_json_text_and_reported() -> None:
    items = [{"Id": 1, "Nickname": "Bart", "Score": 1.50, "Tags": {"a": [1, None]}},
             {"Id": 2, "Score": None}, {"Id": 3, "Nickname": "Lisa"}]  # fmt: skip
    body = page(items).replace(b"1.5", b"1.50")
    fast, slow = both(SCHEMA, [body])
    assert_same(fast, slow)
    assert fast.path == "slow" and "unexpected field" in (fast.fallback_reason or "")
    schema = fast.record_batch.schema
    assert schema.names == [*EVERY_TYPE, "Nickname", "Score", "Tags", "_raw"]
    assert schema.field("Nickname").type == pa.string()
    assert fast.extra_fields == ("Nickname", "Score", "Tags")
    assert column(fast, "Nickname") == ['"Bart"', None, '"Lisa"']
    assert column(fast, "Score") == ["1.50", None, None]  # JSON null is NULL
    assert column(fast, "Tags") == ['{"a":[1,null]}', None, None]
    assert column(fast, "Id") == [1, 2, 3]
    assert [raw_of(fast, k) for k in range(3)] == [None, None, None]
    assert fast.problems.count("Nickname", "unknown_field") == 2
    assert fast.problems.count("Score", "unknown_field") == 2
    assert fast.problems.unknown_fields == ("Nickname", "Score", "Tags")


def test_a_detail_only_field_in_a_list_row_keeps_its_declared_type() -> None:
    """Which fields lists carry is a guess per school: a stale list flag loses nothing."""
    schema = make_schema(EVERY_TYPE | {"Gender": "String", "Major": "Lookup", "Born": "DateTime"},
                         detail_only=("Gender", "Major", "Born"))  # fmt: skip
    items = [{"Id": 1, "Major": {"Id": 5, "AttributeId": 6, "Name": "Law"}, "New": 1},
             {"Id": 2, "Born": "2000-01-01T00:00:00.1234567", "Major": "Law"}]  # fmt: skip
    fast, slow = both(schema, [page(items)])
    assert_same(fast, slow)
    got = fast.record_batch.schema
    assert got.names == [*EVERY_TYPE, "Major", "Born", "New", "_raw"]
    assert (
        got.field("Major").type == Converter(schema, detail=True).arrow_schema.field("Major").type
    )
    assert got.field("Born").type == TS_UTC
    assert fast.extra_fields == ("Major", "Born", "New")
    assert column(fast, "Major") == [{"Id": 5, "AttributeId": 6, "Name": "Law"}, None]
    assert column(fast, "Born") == [None, _utc(2000, 1, 1, 0, 0, 0, 123456)]
    assert raw_of(fast, 1) == {"Major": '"Law"'}
    assert fast.problems.count("Major", "unlisted_field") == 2
    assert fast.problems.count("Major", "bad_value") == 1
    assert fast.problems.unknown_fields == ("New",)


def test_a_key_differing_only_by_case_fills_the_declared_field() -> None:
    fast, slow = both(SCHEMA, [page([{"id": 7, "NAME": "Ann", "Program": {"id": 3, "name": "X"}}])])
    assert_same(fast, slow)
    row = rows(fast)[0]
    assert row["Id"] == 7 and row["Name"] == "Ann"
    assert row["Program"] == {"Id": 3, "AttributeId": None, "Name": "X"}
    assert row["_raw"] is None
    assert fast.problems.count("Id", "case_variant") == 1
    assert fast.problems.count("Program", "case_variant") == 1
    assert fast.record_batch.schema.names == [*EVERY_TYPE, "_raw"]


def test_unknown_names_that_cannot_be_columns_go_to_raw() -> None:
    """DuckDB resolves names case-insensitively and _-names are ours: those go to _raw."""
    items = [{"Id": 1, "id": 2, "_extracted_at": "x", "Foo": 1, "foo": 2, "": 3}]
    converted = Converter(SCHEMA).convert_pages([page(items)])
    assert column(converted, "Id") == [1]
    assert converted.extra_fields == ("Foo",)
    assert column(converted, "Foo") == ["1"]
    assert raw_of(converted, 0) == {"id": "2", "_extracted_at": '"x"', "foo": "2", "": "3"}
    assert converted.problems.count(kind="unknown_field") == 5
    names = [n.casefold() for n in converted.record_batch.schema.names]
    assert len(names) == len(set(names))


def test_an_unknown_subfield_keeps_the_typed_struct_and_the_raw_value() -> None:
    program = {"Id": 1, "AttributeId": 2, "Name": "Economics", "Code": "ECON"}
    fast, slow = both(SCHEMA, [page([{"Program": program}])])
    assert_same(fast, slow)
    assert column(fast, "Program") == [{"Id": 1, "AttributeId": 2, "Name": "Economics"}]
    assert raw_of(fast, 0) == {"Program": orjson.dumps(program).decode()}
    assert fast.problems.count("Program", "unknown_subfield") == 1


def test_a_duplicate_key_keeps_every_value_raw() -> None:
    body = page([{"Id": 1}]).replace(b'{"Id":1}', b'{"Id":1,"Name":"a","Name":"b","X":1,"X":2}')
    fast, slow = both(SCHEMA, [body])
    assert_same(fast, slow)
    assert column(fast, "Name") == [None]
    assert column(fast, "X") == ["[1,2]"]
    assert raw_of(fast, 0) == {"Name": '["a","b"]'}
    assert fast.problems.count("Name", "duplicate_key") == 1
    assert fast.problems.count("X", "duplicate_key") == 1


def test_a_duplicate_key_inside_an_object_keeps_the_value_raw() -> None:
    body = page([{"Program": 0}]).replace(b"0}", b'{"Id":1,"Id":2}}')
    converted = Converter(SCHEMA).convert_pages([body])
    assert column(converted, "Program") == [None]
    assert raw_of(converted, 0) == {"Program": '{"Id":1,"Id":2}'}
    assert converted.problems.count("Program", "duplicate_key") == 1


@pytest.mark.parametrize("item", [None, 5, "x", [1]])
def test_an_item_that_is_not_an_object_becomes_a_row_of_nulls_with_its_raw(item: Any) -> None:
    fast, slow = both(SCHEMA, [page([{"Id": 1}, item])])
    assert_same(fast, slow)
    assert column(fast, "Id") == [1, None]
    assert raw_of(fast, 1) == {"$": orjson.dumps(item).decode()}
    assert fast.problems.count("$", "not_an_object") == 1


# -- the envelope ------------------------------------------------------------------------


def test_envelope_keys_are_case_insensitive_and_extras_reported() -> None:
    body = (
        b'{"pageSize":2,"PageNumber":3,"total":9,"NumberOfPages":5,"items":[{"Id":1}],"Links":[]}'
    )
    fast, slow = both(SCHEMA, [body])
    assert_same(fast, slow)
    assert fast.pages == (PageMeta(3, 2, 9, 5, 1),)
    assert column(fast, "Id") == [1]
    assert fast.problems.count("(envelope).Items", "case_variant") == 1
    assert fast.problems.count("(envelope).Links", "unknown_field") == 1
    assert fast.problems.unknown_fields == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "expected a JSON object envelope, got an array"),
        (b'"page"', "got a string"),
        (b'{"PageSize":1,"PageNumber":1,"Total":0,"NumberOfPages":0}', "no Items"),
        (
            b'{"PageSize":1,"PageNumber":1,"Total":0,"NumberOfPages":0,"Items":{}}',
            "Items is an object",
        ),
        (b'{"PageSize":1,"PageNumber":1,"Total":0,"NumberOfPages":0,"Items":null}', "no Items"),
        (b'{"PageSize":1,"PageNumber":1,"NumberOfPages":0,"Items":[]}', "Total must be"),
        (b'{"PageSize":1,"PageNumber":1,"Total":-1,"NumberOfPages":0,"Items":[]}', "Total must be"),
        (
            b'{"PageSize":"1","PageNumber":1,"Total":0,"NumberOfPages":0,"Items":[]}',
            "PageSize must",
        ),
        (b'{"PageSize":1,"PageNumber":1.0,"Total":0,"NumberOfPages":0,"Items":[]}', "PageNumber"),
        (b'{"PageSize":1,"PageNumber":true,"Total":0,"NumberOfPages":0,"Items":[]}', "PageNumber"),
        (
            b'{"PageSize":1,"PageNumber":1,"Total":0,"NumberOfPages":null,"Items":[]}',
            "NumberOfPages",
        ),
    ],
)
def test_valid_json_of_the_wrong_shape_is_a_schema_error(body: bytes, message: str) -> None:
    for converter in (Converter(SCHEMA), Converter(SCHEMA, fast=False)):
        with pytest.raises(PageShapeError, match=message) as info:
            converter.convert_pages([page([]), body])
        assert info.value.page_index == 1
        assert isinstance(info.value, SchemaError)
        assert not isinstance(info.value, TransientError)


MALFORMED = [
    page([full_item()])[:-7],  # truncated
    page([{"Name": "é"}])[:-5],  # truncated inside the structure after a multibyte char
    page([{"Name": "é"}]).replace("é".encode(), b"\xc3"),  # cut inside a UTF-8 sequence
    page([{"Name": "x"}]).replace(b'"x"', b'"\xff"'),  # not UTF-8
    b"",
    b"   \n",
    page([]) + b"garbage",
    page([]) + page([]),  # two values in one body
    page([]) + b"\n" + page([]),
    page([{"Count": 0}]).replace(b"0}", b"NaN}"),
    page([{"Name": "x"}]).replace(b'"x"', b'"\\ud83d"'),  # a lone surrogate
    page([{"Name": "x"}]).replace(b'"x"', b'"a\x01b"'),  # a raw control character
    b'{"PageSize":1,"Items":[{"Id":1}',
    b"<html>502 Bad Gateway</html>",
]


def test_two_values_in_one_body_and_a_blank_one_cannot_pass_for_two_pages() -> None:
    """The fast reader counts values, not bodies: a blank body must not hide a double one."""
    for converter in (Converter(SCHEMA), Converter(SCHEMA, fast=False)):
        with pytest.raises(MalformedPageError) as info:
            converter.convert_pages([page([{"Id": 1}]) + page([{"Id": 2}]), b" "])
        assert info.value.page_index == 0


@pytest.mark.parametrize("body", MALFORMED)
def test_a_body_that_is_not_json_is_a_transient_error(body: bytes) -> None:
    """Truncated or garbled in transit: MalformedPageError is a TransientError (retry)."""
    for converter in (Converter(SCHEMA), Converter(SCHEMA, fast=False)):
        with pytest.raises(MalformedPageError) as info:
            converter.convert_pages([page([{"Id": 1}]), page([]), body])
        assert info.value.page_index == 2
        assert isinstance(info.value, TransientError)
        assert "not valid JSON" in str(info.value)


def test_a_bare_array_body_is_converted_by_convert_array() -> None:
    options = make_schema({"Id": "Int64", "Name": "String"}, entity="lookup-options")
    converted = Converter(options).convert_array(b'\xef\xbb\xbf[{"Id":1,"Name":"A"},{"Id":2}]')
    assert rows(converted) == [
        {"Id": 1, "Name": "A", "_raw": None},
        {"Id": 2, "Name": None, "_raw": None},
    ]
    assert converted.pages == ()
    with pytest.raises(PageShapeError, match="expected a JSON array"):
        Converter(options).convert_array(b'{"Items":[]}')
    with pytest.raises(MalformedPageError):
        Converter(options).convert_array(b"[{")


# -- detail rows ---------------------------------------------------------------------------


def test_detail_rows_have_every_field_and_custom_attributes_as_a_map() -> None:
    students = load_schema("students")
    detail = Converter(students, detail=True)
    assert detail.arrow_schema.names[:-1] == [f.name for f in students.fields]
    body = {"Id": 10_000_007, "IsFerpa": True,
            "CustomAttributeValues": {"custom_attribute_10888805132042": "True",
                                      "custom_attribute_10888805132043": None},
            "Addresses": [{"AddressTypeId": 1, "City": "Springfield"}]}  # fmt: skip
    converted = detail.convert_objects([orjson.dumps(body), b'{"Id":10000014}'])
    got = rows(converted)
    assert got[0]["CustomAttributeValues"] == [
        ("custom_attribute_10888805132042", "True"),
        ("custom_attribute_10888805132043", None),
    ]
    assert got[0]["Addresses"][0]["City"] == "Springfield"
    assert got[1]["CustomAttributeValues"] is None
    assert len(converted.problems) == 0
    bad = detail.convert_objects([b'{"Id":1,"CustomAttributeValues":{"custom_attribute_1":5}}'])
    assert column(bad, "CustomAttributeValues") == [None]
    assert raw_of(bad, 0) == {"CustomAttributeValues": '{"custom_attribute_1":5}'}
    with pytest.raises(PageShapeError, match="expected a JSON object"):
        detail.convert_objects([b"[]"])


def test_a_schema_with_a_map_in_its_list_fields_takes_the_careful_path() -> None:
    schema = make_schema({"Id": "Int64", "Custom": "CustomAttributes"})
    converted = Converter(schema).convert_pages([page([{"Id": 1, "Custom": {"k": "v"}}])])
    assert converted.path == "slow" and converted.fallback_reason is None
    assert column(converted, "Custom") == [[("k", "v")]]


# -- the report and the files ----------------------------------------------------------------


def test_problem_reports_merge_and_summarise() -> None:
    a = Converter(SCHEMA).convert_pages([page([{"Count": "x", "New": 1}])]).problems
    b = Converter(SCHEMA).convert_pages([page([{"Count": "y"}])]).problems
    a.merge(b)
    assert a.counts() == {"Count:bad_value": 2, "New:unknown_field": 1}
    assert a.count() == 3 and len(a) == 2
    assert a.as_dicts()[0] == {"field": "Count", "kind": "bad_value", "count": 2,
                               "example": '"x"', "detail": "expected Int32, got a string"}  # fmt: skip
    assert "Count: bad_value x2" in str(next(iter(a)))


def test_output_reads_back_from_parquet_and_duckdb(tmp_path: Path) -> None:
    items = [full_item(0), {"Id": 2, "Count": "abc", "Extra": True}]
    converted = Converter(SCHEMA).convert_pages([page(items)])
    path = tmp_path / "things.parquet"
    pq.write_table(pa.Table.from_batches([converted.record_batch]), path, compression="zstd")
    assert pq.read_table(path).to_pylist() == rows(converted)
    con = duckdb.connect()
    got = con.execute(
        f"SELECT Id, Count, _raw['Count'], Extra, year(\"When\"), Program.Name "
        f"FROM read_parquet('{path}') ORDER BY Id"
    ).fetchall()
    con.close()
    assert got == [(2, None, '"abc"', "true", None, None),
                   (10_607_302_981_934, 2**31 - 1, None, None, 2020, "Economics")]  # fmt: skip
