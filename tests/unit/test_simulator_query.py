"""The simulator's query-string and route parsing: pure functions, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from extractor.simulator.query import (
    ListQuery,
    QueryError,
    lower_params,
    parse_datetime,
    parse_list_query,
)
from extractor.simulator.routes import (
    DOCS_TEMPLATE,
    OPTIONS_TEMPLATE,
    TOKEN_TEMPLATE,
    UNMATCHED,
    Kind,
    resolve,
)

ENTITIES = frozenset({"students", "notes", "companies", "lookups", "job-postings"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-03-16T10:00:00", datetime(2020, 3, 16, 10, tzinfo=UTC)),
        ("2020-03-16T10:00:00Z", datetime(2020, 3, 16, 10, tzinfo=UTC)),
        ("2020-03-16T10:00:00z", datetime(2020, 3, 16, 10, tzinfo=UTC)),
        ("2020-03-16T10:00:00.123", datetime(2020, 3, 16, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2021-01-02T03:04:05.1234567", datetime(2021, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2021-01-02T03:04:05.1234567Z", datetime(2021, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2021-01-02T03:04:05.9999999", datetime(2021, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)),
        ("2020-03-16", datetime(2020, 3, 16, tzinfo=UTC)),
        ("2020-03-16T10:30", datetime(2020, 3, 16, 10, 30, tzinfo=UTC)),
        ("2020-03-16T12:00:00+02:00", datetime(2020, 3, 16, 10, tzinfo=UTC)),
        ("2020-03-16T08:00:00-0200", datetime(2020, 3, 16, 10, tzinfo=UTC)),
    ],
)
def test_datetimes_parse_to_aware_utc(text: str, expected: datetime) -> None:
    """API date/times (0-7 fractional digits, optional Z) become aware UTC; 100 ns truncates."""
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2020-13-01T00:00:00",
        "2020-02-30",
        "2020-03-16T25:00:00",
        "2020-03-16T10:00:00.12345678",
        "1584352800",
        "2020-03-16T10:00:00+2",
    ],
)
def test_bad_datetimes_are_query_errors(text: str) -> None:
    with pytest.raises(QueryError):
        parse_datetime(text)


def test_parameter_names_are_case_insensitive_and_first_wins() -> None:
    params = lower_params([("PageSize", "10"), ("pagesize", "20"), ("PAGENUMBER", "3")])
    assert params == {"pagesize": "10", "pagenumber": "3"}


def test_list_query_defaults() -> None:
    q = parse_list_query({}, entity="students", has_modify_date=True)
    assert q == ListQuery(page_number=1, page_size=25)


@pytest.mark.parametrize("size", ["1", "25", "500", "+7"])
def test_page_size_within_1_to_500_is_accepted(size: str) -> None:
    q = parse_list_query({"pagesize": size}, entity="companies", has_modify_date=True)
    assert q.page_size == int(size)


@pytest.mark.parametrize(
    "params",
    [
        {"pagesize": "501"},
        {"pagesize": "0"},
        {"pagesize": "-1"},
        {"pagesize": "ten"},
        {"pagesize": ""},
        {"pagesize": "2.5"},
        {"pagenumber": "0"},
        {"pagenumber": "-3"},
        {"pagenumber": "one"},
        {"pagenumber": "1e3"},
        {"modifyfromdate": "not-a-date"},
        {"modifytodate": "2020-99-01"},
    ],
)
def test_out_of_range_or_malformed_values_are_query_errors(params: dict[str, str]) -> None:
    with pytest.raises(QueryError):
        parse_list_query(params, entity="companies", has_modify_date=True)


def test_filters_apply_only_where_the_api_has_them() -> None:
    """year is a students filter, EntityTypeId a notes one, dates need a modify date;
    elsewhere they are ignored, even when malformed, as unknown parameters are."""
    params = {
        "year": "2018",
        "entitytypeid": "2201",
        "modifyfromdate": "2020-01-01T00:00:00",
        "modifytodate": "2021-01-01T00:00:00",
    }
    students = parse_list_query(params, entity="students", has_modify_date=True)
    assert students.year == 2018
    assert students.entity_type_id is None
    assert students.modify_from == datetime(2020, 1, 1, tzinfo=UTC)
    assert students.modify_to == datetime(2021, 1, 1, tzinfo=UTC)
    notes = parse_list_query(params, entity="notes", has_modify_date=True)
    assert (notes.year, notes.entity_type_id) == (None, 2201)
    lookups = parse_list_query(
        {"modifyfromdate": "garbage", "year": "x"}, entity="lookups", has_modify_date=False
    )
    assert lookups == ListQuery()


def test_bad_year_on_students_is_an_error() -> None:
    with pytest.raises(QueryError):
        parse_list_query({"year": "twenty"}, entity="students", has_modify_date=True)


@pytest.mark.parametrize(
    ("path", "kind", "template", "entity", "id_"),
    [
        ("/api/v2/students", Kind.LIST, "/api/v2/students", "students", None),
        ("/Api/V2/Students", Kind.LIST, "/api/v2/students", "students", None),
        ("/API/V2/STUDENTS/", Kind.LIST, "/api/v2/students", "students", None),
        ("/api/v2/job-postings", Kind.LIST, "/api/v2/job-postings", "job-postings", None),
        (
            "/Api/V2/Notes/10607302981934",
            Kind.DETAIL,
            "/api/v2/notes/{id}",
            "notes",
            10607302981934,
        ),
        ("/api/V2/lookups/3/Options", Kind.OPTIONS, OPTIONS_TEMPLATE, "lookups", 3),
        ("/api/v2/Documentation", Kind.DOCS, DOCS_TEMPLATE, None, None),
        ("/api/client/generateAuthenticationToken", Kind.TOKEN, TOKEN_TEMPLATE, None, None),
        ("/API/CLIENT/GENERATEAUTHENTICATIONTOKEN", Kind.TOKEN, TOKEN_TEMPLATE, None, None),
        ("/_sim/ledger", Kind.LEDGER, "/_sim/ledger", None, None),
        ("/_sim/mutate", Kind.MUTATE, "/_sim/mutate", None, None),
    ],
)
def test_routes_resolve_in_any_casing(
    path: str, kind: Kind, template: str, entity: str | None, id_: int | None
) -> None:
    route = resolve(path, ENTITIES)
    assert (route.kind, route.template, route.entity, route.id) == (kind, template, entity, id_)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api",
        "/api/v2",
        "/api/v2/unicorns",
        "/api/v1/students",
        "/api/v2/students/abc",
        "/api/v2/students/+5",
        "/api/v2/students/5/options",
        "/api/v2/lookups/x/options",
        "/api/v2/lookups/5/values",
        "/api/v2/students/1/2/3",
        "/api/client/token",
        "/_sim/other",
    ],
)
def test_unknown_paths_are_unmatched(path: str) -> None:
    assert resolve(path, ENTITIES) is UNMATCHED
