"""extractor.core.watermark: API datetimes, incremental windows, latest version per Id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extractor.core.watermark import (
    API_MIN,
    DEFAULT_LOOKBACK,
    Window,
    advance,
    compute_window,
    ensure_utc,
    format_api_datetime,
    latest_by_id,
    parse_api_datetime,
)

START = datetime(2026, 1, 5, 12, 0, 0, 654321, tzinfo=UTC)

# -- formatting and parsing ------------------------------------------------------------


def test_format_is_naive_utc_whole_seconds() -> None:
    assert format_api_datetime(START) == "2026-01-05T12:00:00"
    paris = timezone(timedelta(hours=1))
    assert format_api_datetime(datetime(2026, 1, 5, 13, 0, 1, tzinfo=paris)) == (
        "2026-01-05T12:00:01"
    )
    assert format_api_datetime(API_MIN) == "0001-01-01T00:00:00"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_api_datetime(datetime(2026, 1, 5))
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(datetime(2026, 1, 5))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-05-20T18:25:43", datetime(2020, 5, 20, 18, 25, 43, tzinfo=UTC)),
        ("2020-03-16T10:00:00.123", datetime(2020, 3, 16, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2021-01-02T03:04:05.1234567", datetime(2021, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2021-12-31T23:59:59.9999999", datetime(2021, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2020-05-20T18:25:43Z", datetime(2020, 5, 20, 18, 25, 43, tzinfo=UTC)),
        ("2020-05-20T18:25:43.5z", datetime(2020, 5, 20, 18, 25, 43, 500000, tzinfo=UTC)),
        ("2020-05-20T20:25:43+02:00", datetime(2020, 5, 20, 18, 25, 43, tzinfo=UTC)),
        ("2020-05-20T16:25:43-0200", datetime(2020, 5, 20, 18, 25, 43, tzinfo=UTC)),
        ("2020-05-20 18:25:43", datetime(2020, 5, 20, 18, 25, 43, tzinfo=UTC)),
        ("2020-05-20T18:25", datetime(2020, 5, 20, 18, 25, tzinfo=UTC)),
        ("2020-05-20", datetime(2020, 5, 20, tzinfo=UTC)),
        (" 2020-05-20T18:25:43 ", datetime(2020, 5, 20, 18, 25, 43, tzinfo=UTC)),
        ("9999-12-31T23:59:59.9999999", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_parse_api_datetimes(text: str, expected: datetime) -> None:
    assert parse_api_datetime(text) == expected


def test_the_api_minimum_means_no_date() -> None:
    assert parse_api_datetime("0001-01-01T00:00:00") is None
    assert parse_api_datetime("0001-01-01T00:00:00Z") is None
    assert parse_api_datetime("0001-01-01T00:00:00.0000000") is None
    assert parse_api_datetime("0001-01-01T00:00:00", min_is_none=False) == API_MIN


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2020-13-01T00:00:00",
        "2020-02-30T00:00:00",
        "2020-05-20T25:00:00",
        "2020-05-20T18:25:43.",
        "20200520T182543",
        "２０２０-05-20T18:25:43",  # noqa: RUF001 (full-width digits on purpose)
        "0001-01-01T00:00:00+01:00",  # before the minimum once made UTC
    ],
)
def test_malformed_datetimes_raise(text: str) -> None:
    with pytest.raises(ValueError, match="API datetime"):
        parse_api_datetime(text)


aware = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@given(aware, st.text(alphabet="0123456789", max_size=9))
def test_format_then_parse_round_trips_to_the_second(value: datetime, digits: str) -> None:
    text = format_api_datetime(value)
    assert parse_api_datetime(text) == value.replace(microsecond=0)
    if digits:
        fraction = int(digits[:6].ljust(6, "0"))
        assert parse_api_datetime(f"{text}.{digits}") == value.replace(microsecond=fraction)


# -- windows ---------------------------------------------------------------------------


def test_no_watermark_means_a_full_walk_with_a_frozen_upper_bound() -> None:
    window = compute_window(None, START)
    assert window.is_full
    assert window.modify_to == START.replace(microsecond=0)
    assert window.params() == {"ModifyToDate": "2026-01-05T12:00:00"}
    assert window.key() == "full..2026-01-05T12:00:00"


def test_an_incremental_window_looks_back_an_hour_from_the_watermark() -> None:
    watermark = datetime(2026, 1, 4, 12, 0, 0, tzinfo=UTC)
    window = compute_window(watermark, START)
    assert window.modify_from == watermark - DEFAULT_LOOKBACK
    assert window.params() == {
        "ModifyFromDate": "2026-01-04T11:00:00",
        "ModifyToDate": "2026-01-05T12:00:00",
    }
    assert window.params(from_param="modifyFromDate", to_param=None) == {
        "modifyFromDate": "2026-01-04T11:00:00"
    }
    assert compute_window(watermark, START, lookback=timedelta(0)).modify_from == watermark


def test_an_entity_without_a_modify_filter_is_always_walked_whole() -> None:
    assert compute_window(START - timedelta(days=1), START, filterable=False).is_full


def test_a_watermark_from_the_future_is_clamped_to_the_run_start() -> None:
    window = compute_window(START + timedelta(days=2), START)
    assert window.modify_from == START.replace(microsecond=0) - DEFAULT_LOOKBACK


def test_a_lookback_past_the_api_minimum_is_clamped() -> None:
    window = compute_window(API_MIN + timedelta(minutes=5), START)
    assert window.modify_from == API_MIN


def test_window_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="lookback"):
        compute_window(None, START, lookback=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="naive"):
        compute_window(datetime(2026, 1, 1), START)
    with pytest.raises(ValueError, match="after"):
        Window(START, START - timedelta(seconds=1))


def test_a_window_round_trips_through_json_and_normalises_to_utc() -> None:
    window = compute_window(datetime(2026, 1, 4, tzinfo=UTC), START)
    data = json.loads(json.dumps(window.to_dict()))
    assert Window.from_dict(data) == window
    full = compute_window(None, START)
    assert Window.from_dict(full.to_dict()) == full
    eastern = timezone(timedelta(hours=-5))
    assert Window(None, datetime(2026, 1, 5, 7, tzinfo=eastern)).modify_to.tzinfo is UTC
    with pytest.raises(ValueError, match="bad window"):
        Window.from_dict({"modify_from": None})
    with pytest.raises(ValueError, match="naive"):
        Window.from_dict({"modify_from": None, "modify_to": "2026-01-05T12:00:00"})


@given(
    st.one_of(st.none(), aware),
    aware,
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_windows_never_invert_and_always_cover_the_watermark(
    watermark: datetime | None, start: datetime, lookback: timedelta
) -> None:
    window = compute_window(watermark, start, lookback=lookback)
    assert window.modify_to == start.replace(microsecond=0)
    if window.modify_from is not None:
        assert watermark is not None
        assert window.modify_from <= window.modify_to
        assert window.modify_from <= watermark  # nothing after the watermark is skipped
        assert window.modify_from.microsecond == 0


def test_the_watermark_advances_only_when_the_window_is_whole() -> None:
    old = datetime(2026, 1, 4, tzinfo=UTC)
    window = compute_window(old, START)
    assert advance(old, window, complete=False) == old
    assert advance(None, window, complete=False) is None
    assert advance(old, window, complete=True) == window.modify_to
    # the next window starts a lookback before exactly what the server was sent
    following = compute_window(window.modify_to, START + timedelta(days=1))
    assert following.modify_from == window.modify_to - DEFAULT_LOOKBACK


# -- latest version per Id -------------------------------------------------------------


def test_latest_by_id_keeps_the_newest_version_and_first_seen_order() -> None:
    rows: list[dict[str, Any]] = [
        {"Id": 1, "ModifyDate": 5, "v": "a"},
        {"Id": 2, "ModifyDate": 1, "v": "b"},
        {"Id": 1, "ModifyDate": 3, "v": "older, extracted later"},
        {"Id": 2, "ModifyDate": 1, "v": "same version, extracted later"},
    ]
    out = latest_by_id(rows, id_of=lambda r: r["Id"], version_of=lambda r: r["ModifyDate"])
    assert [r["v"] for r in out] == ["a", "same version, extracted later"]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3))))
def test_latest_by_id_matches_a_sort_based_reference(rows: list[tuple[int, int]]) -> None:
    indexed = list(enumerate(rows))  # (extraction order, (id, version))
    out = latest_by_id(indexed, id_of=lambda r: r[1][0], version_of=lambda r: r[1][1])
    expected = {}
    for order, (key, version) in sorted(indexed, key=lambda r: (r[1][1], r[0])):
        expected[key] = (order, (key, version))
    assert sorted(out) == sorted(expected.values())
    assert len({r[1][0] for r in out}) == len(out)
