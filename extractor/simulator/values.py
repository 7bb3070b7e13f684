"""Realistic field values for the simulator, by 12Twenty type and field name.

Values include what real schools' data has and what trips extractors up: nulls, empty
strings and lists, non-ASCII names, lookup objects, custom-attribute maps, and DateTimes
with 0 to 7 fractional digits (.NET writes up to 7).
"""

from __future__ import annotations

import random
import time
from typing import Any, TypeVar

# Names from several languages: a data tool must keep every one of them intact.
FIRST_NAMES = (
    "Homer", "Marge", "José", "Zoë", "Łukasz", "Aoife", "Søren", "Nguyễn", "Chloé", "Ahmed",
    "Priya", "Björn", "María", "Jürgen", "Siobhán", "Ana", "Wei", "Olúwaseun", "Emily", "Noah",
    "Anaïs", "Dmitri", "Hana", "Mateo", "Fatima", "Liam", "Ines", "Kenji", "Amélie", "Ravi",
)  # fmt: skip
LAST_NAMES = (
    "Simpson", "Müller", "García", "O'Brien", "Nguyen", "Kowalski", "Smith", "Jensen",
    "Öztürk", "Dubois", "Rossi", "Silva", "Tanaka", "Patel", "Ivanov", "Johansson", "Chen",
    "李", "Ó Súilleabháin", "van der Berg", "Núñez", "Kim", "Brown", "Schröder", "Adeyemi",
)  # fmt: skip
LOOKUP_NAMES = (
    "Economics", "Computer Science", "Finance", "Marketing", "History", "Biology",
    "Mechanical Engineering", "Public Policy", "Nursing", "Philosophy", "Data Science",
    "Études françaises", "Accounting", "Law (J.D.)", "MBA", "Undeclared",
)  # fmt: skip
WORDS = (
    "career", "fair", "resume", "interview", "offer", "internship", "employer", "alumni",
    "networking", "panel", "coffee chat", "follow-up", "on-campus", "virtual", "café",
    "naïve", "rôle", "€50k", "—", "✓",
)  # fmt: skip
TERMS = ("Spring", "Summer", "Fall", "Winter")
COMPANY_SUFFIXES = ("Inc.", "LLC", "GmbH", "S.A.", "Ltd", "& Co.", "Group", "Partners")

# 2015-01-01 .. 2026-06-01 in epoch seconds: the span of generated history.
HISTORY_START = 1_420_070_400
HISTORY_END = 1_780_272_000


def format_datetime(epoch_us: int, digits: int) -> bytes:
    """Render epoch microseconds as 12Twenty does: naive UTC with ``digits`` (0-7) decimals.

    The 7th digit (100 ns) is always 0 here, so truncating to microseconds is exact; callers
    store values already truncated to ``digits`` so the served text and stored value agree.
    Returns ASCII bytes: the simulator splices it straight into JSON, once per served row,
    so dates and times of day come from tables instead of being formatted each time.
    """
    sec, us = divmod(epoch_us, 1_000_000)
    days, rem = divmod(sec, 86_400)
    date = _DATES.get(days)
    if date is None:
        t = time.gmtime(days * 86_400)
        date = _DATES[days] = b"%04d-%02d-%02dT" % (t[0], t[1], t[2])
    if digits <= 0:
        return date + _TIMES[rem]
    return date + _TIMES[rem] + (b".%06d0" % us)[: digits + 1]


_DATES: dict[int, bytes] = {}  # day number -> b"YYYY-MM-DDT"
_TIMES: tuple[bytes, ...] = tuple(
    b"%02d:%02d:%02d" % (s // 3_600, s // 60 % 60, s % 60) for s in range(86_400)
)


def truncate_us(epoch_us: int, digits: int) -> int:
    """Drop the sub-second precision a ``digits``-decimal rendering cannot show."""
    if digits >= 6:
        return epoch_us
    unit: int = 10 ** (6 - digits)
    return epoch_us - epoch_us % unit


def random_datetime_us(rng: random.Random) -> tuple[int, int]:
    """A DateTime in the history span: (epoch microseconds, fractional digits)."""
    digits = rng.randrange(8)
    us = rng.randrange(HISTORY_START * 1_000_000, HISTORY_END * 1_000_000)
    return truncate_us(us, digits), digits


_T = TypeVar("_T")


LOOKUP_BASE = 200  # lookup Ids (the lookups entity's id_base)
ATTRIBUTE_BASE = 1_000_100  # attribute Ids of built-in lookup fields
CUSTOM_ATTRIBUTE_BASE = 10_888_805_132_000  # attribute Ids of custom attributes


def lookup_for_attribute(attribute_id: int) -> int:
    """The lookup whose options a lookup-valued attribute takes."""
    return LOOKUP_BASE + (attribute_id - ATTRIBUTE_BASE) % 100


def option_count(lookup_id: int) -> int:
    return 2 + lookup_id % 11


def option_id(lookup_id: int, k: int) -> int:
    return lookup_id * 1_000 + k


def option_name(lookup_id: int, k: int) -> str:
    if k % 4:
        return f"{LOOKUP_NAMES[(lookup_id + k) % len(LOOKUP_NAMES)]} {k + 1}"
    return FIRST_NAMES[(lookup_id + k) % len(FIRST_NAMES)]


def _maybe_null(rng: random.Random, p: float, value: _T) -> _T | None:
    return None if rng.random() < p else value


def _string(rng: random.Random, name: str) -> str | None:
    lower = name.lower()
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if "email" in lower:
        handle = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        return _maybe_null(rng, 0.1, f"{handle}{rng.randrange(1000)}@example.edu")
    if "phone" in lower:
        return _maybe_null(
            rng, 0.3, f"+1 ({rng.randrange(200, 999)}) 555-{rng.randrange(10_000):04d}"
        )
    if lower in ("firstname", "preferredname"):
        return first if lower == "firstname" else _maybe_null(rng, 0.6, first)
    if lower in ("lastname",):
        return last
    if lower in ("middlename", "prefixname"):
        return _maybe_null(rng, 0.5, rng.choice(("A.", "Marie", "J", "", "Dr.")))
    if lower in ("fullname", "ownername", "accountmanagername", "outreachleadname"):
        return _maybe_null(rng, 0.05, f"{first} {last}")
    if "url" in lower or lower == "website":
        return _maybe_null(rng, 0.3, f"https://www.example.com/{last.lower().replace(' ', '-')}")
    if lower in ("name", "companyname", "parentcompanyname"):
        return f"{last} {rng.choice(COMPANY_SUFFIXES)}"
    if lower in ("graduationterm",):
        return rng.choice(TERMS)
    if lower in ("gender",):
        return _maybe_null(rng, 0.2, rng.choice(("Female", "Male", "Non-binary", "")))
    if lower in ("text", "description"):
        n = rng.randrange(0, 25)
        return _maybe_null(rng, 0.1, " ".join(rng.choice(WORDS) for _ in range(n)))
    if "zip" in lower or "postal" in lower:
        return f"{rng.randrange(100_000):05d}"
    n = rng.randrange(1, 4)
    return _maybe_null(rng, 0.15, " ".join(rng.choice(WORDS) for _ in range(n)).title())


def _int(rng: random.Random, type_name: str, name: str) -> int | None:
    lower = name.lower()
    if "year" in lower:
        return rng.randrange(2015, 2029)
    if type_name == "Byte":
        return rng.randrange(256)
    if type_name == "Int16":
        return rng.randrange(-(2**15), 2**15)
    if type_name == "Int32":
        return _maybe_null(rng, 0.1, rng.randrange(0, 100_000))
    # Int64: ids of other records, sometimes absent.
    return _maybe_null(rng, 0.2, rng.randrange(10_000_000, 10_000_000_000_000))


def value_for(rng: random.Random, type_: Any, name: str, attribute_id: int) -> Any:
    """A JSON-ready value of 12Twenty type ``type_`` for a field called ``name``."""
    if isinstance(type_, dict):
        return _maybe_null(
            rng, 0.1, {k: value_for(rng, t, k, attribute_id) for k, t in type_.items()}
        )
    if isinstance(type_, list):
        return [value_for(rng, type_[0], name, attribute_id) for _ in range(rng.randrange(3))]
    if type_.endswith("[]"):
        item = type_[:-2]
        values = [value_for(rng, item, name, attribute_id) for _ in range(rng.randrange(4))]
        return [v for v in values if v is not None]
    if type_ == "String":
        return _string(rng, name)
    if type_ == "Boolean":
        return rng.random() < 0.5
    if type_ in ("Byte", "Int16", "Int32", "Int64"):
        return _int(rng, type_, name)
    if type_ == "DateTime":
        if rng.random() < 0.1:
            return None
        us, digits = random_datetime_us(rng)
        return format_datetime(us, digits).decode()
    if type_ == "Lookup":
        # One of the options of the lookup that belongs to this attribute, so that lookup
        # values join /lookups (AttributeId) and /lookups/{id}/options (Id), as they do in
        # 12Twenty.
        lookup_id = lookup_for_attribute(attribute_id)
        option = rng.randrange(option_count(lookup_id))
        return _maybe_null(
            rng,
            0.2,
            {
                "Id": option_id(lookup_id, option),
                "AttributeId": attribute_id,
                "Name": option_name(lookup_id, option),
            },
        )
    if type_ == "IdName":
        return {"Id": rng.randrange(1, 5_000), "Name": rng.choice(LOOKUP_NAMES)}
    if type_ == "IdObject":
        return {"Id": rng.randrange(1, 100_000)}
    if type_ == "CustomAttributes":
        return _custom_attributes(rng)
    raise ValueError(f"unknown 12Twenty type {type_!r} for field {name}")


def _custom_attributes(rng: random.Random) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for _ in range(rng.randrange(0, 6)):
        # The key's number is an attribute's Id (see /api/v2/attributes), as in 12Twenty.
        key = (
            f"custom_attribute_{rng.randrange(CUSTOM_ATTRIBUTE_BASE, CUSTOM_ATTRIBUTE_BASE + 100)}"
        )
        kind = rng.randrange(5)
        value: str | None
        if kind == 0:
            value = rng.choice(("True", "False"))
        elif kind == 1:
            value = str(rng.randrange(50_000_000, 50_100_000))
        elif kind == 2:
            value = ",".join(str(rng.randrange(50_000_000, 50_100_000)) for _ in range(3))
        elif kind == 3:
            value = None
        else:
            value = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 5)))
        out[key] = value
    return out
