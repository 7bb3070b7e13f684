"""Incremental windows, the API's datetime format, and which version of a row wins.

The API speaks naive UTC (``2020-05-20T18:25:43``, 0 to 7 fractional digits, no zone);
everything inside the extractor is aware UTC. Conversions happen only here.

Window decisions:

- A run asks for ``ModifyFromDate = watermark - lookback`` and ``ModifyToDate = run start``,
  both whole seconds. The lookback (default 1 h) covers clock skew between us and the
  server and rows whose transaction committed after our previous run but carry an earlier
  ``ModifyDate``. The overlap re-fetches a few rows; the snapshot deduplicates by ``Id``.
- The upper bound is frozen at the run's start and is *exactly* what was sent (already
  truncated), so the next watermark equals the bound the server applied. A dump that is
  resumed days later keeps its original window (the store persists it with
  :meth:`Window.to_dict`), so rows edited meanwhile fall to the next incremental run.
- The watermark advances to the window's upper bound only once the whole window is durable
  (:func:`advance`); a crash or an exhausted budget leaves it where it was.
- No watermark (never completed a dump) means a full walk: no lower bound.
- A watermark later than the run start (the clock went back, or state copied from another
  machine) is clamped to the run start so the window never inverts and nothing is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

DEFAULT_LOOKBACK = timedelta(hours=1)
API_MIN = datetime(1, 1, 1, tzinfo=UTC)
""".NET's ``DateTime.MinValue``: the API's way of saying "no date"."""


def ensure_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; a naive datetime is a bug inside the extractor."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} where aware UTC is required")
    return value.astimezone(UTC)


def format_api_datetime(value: datetime) -> str:
    """Aware datetime -> the API's naive-UTC ``YYYY-MM-DDTHH:MM:SS`` (sub-seconds dropped)."""
    v = ensure_utc(value)
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"


_API_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*([Zz]|[+-]\d{2}:?\d{2})?",
    re.ASCII,  # \d must not match other scripts' digits
)


def parse_api_datetime(text: str, *, min_is_none: bool = True) -> datetime | None:
    """The API's datetime text -> aware UTC.

    Accepts 0 or more fractional digits (truncated, not rounded, to microseconds: rounding
    ``.9999999`` up could change the second, the day, even the year), an optional ``Z`` or
    offset, a space instead of ``T``, and a bare date. ``0001-01-01T00:00:00`` is the API's
    "no date" and gives None unless ``min_is_none`` is False. Raises ``ValueError``
    otherwise, so the caller can keep the raw value and report it.
    """
    m = _API_DATETIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not an API datetime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        naive = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0),
            int(second or 0), micro,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"not an API datetime: {text!r} ({exc})") from None
    if zone is None or zone in "Zz":
        value = naive.replace(tzinfo=UTC)
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        try:
            value = (naive - sign * offset).replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError(f"API datetime out of range: {text!r}") from None
    if min_is_none and value == API_MIN:
        return None
    return value


@dataclass(frozen=True)
class Window:
    """One run's filter window: ``modify_from`` (None = full walk) to ``modify_to``."""

    modify_from: datetime | None
    modify_to: datetime

    def __post_init__(self) -> None:
        # Normalised to UTC so that equal windows compare (and key) equal.
        object.__setattr__(self, "modify_to", ensure_utc(self.modify_to))
        if self.modify_from is not None:
            object.__setattr__(self, "modify_from", ensure_utc(self.modify_from))
            if self.modify_from > self.modify_to:
                raise ValueError("a window's lower bound is after its upper bound")

    @property
    def is_full(self) -> bool:
        return self.modify_from is None

    def params(
        self,
        *,
        from_param: str = "ModifyFromDate",
        to_param: str | None = "ModifyToDate",
    ) -> dict[str, str]:
        """Query parameters for the list request. ``to_param=None`` leaves the upper
        bound out (``ModifyToDate`` is unconfirmed; a server that ignores it only adds
        overlap, which deduplication absorbs)."""
        out: dict[str, str] = {}
        if self.modify_from is not None:
            out[from_param] = format_api_datetime(self.modify_from)
        if to_param is not None:
            out[to_param] = format_api_datetime(self.modify_to)
        return out

    def key(self) -> str:
        """A stable identity for checkpoints: ``full..2026-01-05T12:00:00`` or
        ``2026-01-05T11:00:00..2026-01-06T12:00:00``."""
        low = "full" if self.modify_from is None else format_api_datetime(self.modify_from)
        return f"{low}..{format_api_datetime(self.modify_to)}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "modify_from": None if self.modify_from is None else self.modify_from.isoformat(),
            "modify_to": self.modify_to.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        low, high = data.get("modify_from"), data.get("modify_to")
        if not isinstance(high, str) or not (low is None or isinstance(low, str)):
            raise ValueError(f"bad window {dict(data)!r}")
        return cls(
            None if low is None else datetime.fromisoformat(low),
            datetime.fromisoformat(high),
        )


def _whole_seconds(value: datetime) -> datetime:
    return ensure_utc(value).replace(microsecond=0)


def compute_window(
    watermark: datetime | None,
    run_start: datetime,
    *,
    lookback: timedelta = DEFAULT_LOOKBACK,
    filterable: bool = True,
) -> Window:
    """The window a run asks for. ``filterable=False`` (an entity the API cannot filter by
    modify date) always gives a full walk."""
    if lookback < timedelta(0):
        raise ValueError("lookback must be >= 0")
    upper = _whole_seconds(run_start)
    if watermark is None or not filterable:
        return Window(None, upper)
    base = min(_whole_seconds(watermark), upper)
    # floor to whole seconds: what is sent is what is stored, and flooring only widens
    lower = API_MIN if base - API_MIN <= lookback else _whole_seconds(base - lookback)
    return Window(lower, upper)


def advance(previous: datetime | None, window: Window, *, complete: bool) -> datetime | None:
    """The watermark after a run over ``window``: its upper bound when every page of the
    window is durable, else unchanged."""
    return window.modify_to if complete else previous


T = TypeVar("T")


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


def latest_by_id(
    rows: Iterable[T],
    *,
    id_of: Callable[[T], Hashable],
    version_of: Callable[[T], _Comparable],
) -> list[T]:
    """One row per id: the greatest ``version_of`` wins, and on a tie the row seen *later*
    (extracted later) wins. Output keeps the order in which ids were first seen.

    ``version_of`` is typically ``(ModifyDate or API_MIN, extraction sequence)``.
    """
    best: dict[Hashable, T] = {}
    for row in rows:
        key = id_of(row)
        if key not in best or not version_of(row) < version_of(best[key]):
            best[key] = row
    return list(best.values())
