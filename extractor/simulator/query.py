"""Query-string parsing for list endpoints, the way the real API accepts it.

Working clients spell parameter names every which way (``PageSize``, ``pageSize``,
``pagesize``) and send naive UTC date/times with 0 to 7 fractional digits, so names are
matched case-insensitively and dates are parsed by hand (``datetime.fromisoformat`` stops
at 6 digits). Pure functions: no aiohttp, no data; a bad value raises :class:`QueryError`,
which the app turns into a 400.

Parameters that do not apply to an entity (``year`` on companies, ``ModifyFromDate`` on
lookups) are ignored, not rejected: that is what an ASP.NET API does with unknown
parameters, and a client must not be able to tell the difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500

# Which extra integer filters each entity honours (lower-case parameter names).
YEAR_ENTITIES = frozenset({"students"})
ENTITY_TYPE_ENTITIES = frozenset({"notes"})

_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII | re.IGNORECASE,
)
_INT = re.compile(r"[+-]?\d{1,18}", re.ASCII)


class QueryError(ValueError):
    """A query parameter has a value the API would refuse (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What a list request asks for, parsed and range-checked."""

    page_number: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    modify_from: datetime | None = None
    modify_to: datetime | None = None
    year: int | None = None
    entity_type_id: int | None = None


def lower_params(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query items -> ``{lower-case name: value}``; the first of repeated names wins."""
    out: dict[str, str] = {}
    for name, value in items:
        out.setdefault(name.lower(), value)
    return out


def parse_datetime(text: str) -> datetime:
    """Parse an API date/time into an aware UTC datetime.

    Accepts ``2020-03-16``, ``2020-03-16T10:00``, ``2020-03-16T10:00:00``, up to 7
    fractional digits (the 7th, 100 ns, is truncated: Python keeps microseconds), and an
    optional ``Z`` or ``+hh:mm`` offset. No suffix means UTC, as the article says.
    """
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise QueryError(f"not a date/time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "").ljust(6, "0")[:6])
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise QueryError(f"not a date/time: {text!r}") from exc
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        value = value - offset if zone[0] == "+" else value + offset
    return value


def parse_int(name: str, text: str) -> int:
    """An integer parameter, or :class:`QueryError` naming it."""
    if _INT.fullmatch(text.strip()) is None:
        raise QueryError(f"{name} must be an integer, not {text!r}")
    return int(text)


def parse_list_query(params: dict[str, str], *, entity: str, has_modify_date: bool) -> ListQuery:
    """Parse a list request's lower-cased parameters for ``entity``.

    PageSize defaults to 25 and must be 1..500; PageNumber defaults to 1 and must be >= 1.
    ModifyFromDate/ModifyToDate are read only when the entity has a modify date; ``year``
    only for students; ``EntityTypeId`` only for notes. Anything else is ignored.
    """
    page_size = DEFAULT_PAGE_SIZE
    if (raw := params.get("pagesize")) is not None:
        page_size = parse_int("PageSize", raw)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise QueryError(f"PageSize must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    page_number = 1
    if (raw := params.get("pagenumber")) is not None:
        page_number = parse_int("PageNumber", raw)
        if page_number < 1:
            raise QueryError(f"PageNumber must be 1 or more, not {page_number}")
    modify_from = modify_to = None
    if has_modify_date:
        if (raw := params.get("modifyfromdate")) is not None:
            modify_from = parse_datetime(raw)
        if (raw := params.get("modifytodate")) is not None:
            modify_to = parse_datetime(raw)
    year = None
    if entity in YEAR_ENTITIES and (raw := params.get("year")) is not None:
        year = parse_int("year", raw)
    entity_type_id = None
    if entity in ENTITY_TYPE_ENTITIES and (raw := params.get("entitytypeid")) is not None:
        entity_type_id = parse_int("EntityTypeId", raw)
    return ListQuery(page_number, page_size, modify_from, modify_to, year, entity_type_id)
