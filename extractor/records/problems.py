"""Data problems found while converting: counted per (field, kind), never fatal.

Kinds (what the converter did about each, see :mod:`extractor.records.convert`):

``unknown_field``     a field the schema does not declare: kept as an extra string column
                      of raw JSON text (or in ``_raw`` when its name cannot be a column)
``bad_value``         a value that does not fit its declared type: typed cell NULL, the
                      raw JSON text in ``_raw``
``unlisted_field``    a field declared ``"list": false`` that a list row carries anyway: kept
                      typed, in a column after the list fields (the flag is stale)
``unknown_subfield``  a nested object with a key its type does not declare: the declared
                      keys stay typed, the whole raw value goes to ``_raw``
``case_variant``      a key that differs from the declared name only by case: read into the
                      declared field (nothing lost)
``duplicate_key``     a key given twice in one object: typed cell NULL, every value in
                      ``_raw``
``not_an_object``     an item that is not a JSON object: a row of NULLs, the item in
                      ``_raw["$"]``

Envelope oddities are reported on the pseudo-field ``(envelope).<Key>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

UNKNOWN_FIELD = "unknown_field"
BAD_VALUE = "bad_value"
UNKNOWN_SUBFIELD = "unknown_subfield"
UNLISTED_FIELD = "unlisted_field"
CASE_VARIANT = "case_variant"
DUPLICATE_KEY = "duplicate_key"
NOT_AN_OBJECT = "not_an_object"

ENVELOPE_FIELD = "(envelope)"
EXAMPLE_CHARS = 120


@dataclass(frozen=True, slots=True)
class Problem:
    """One kind of problem on one field: how often, and the first instance seen."""

    field: str
    kind: str
    count: int
    example: str  # raw JSON text (or the key as sent), truncated to EXAMPLE_CHARS
    detail: str  # what was expected, for the first instance

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.field}: {self.kind} x{self.count}{detail}, e.g. {self.example}"


class ProblemReport:
    """Problems of one conversion; :meth:`merge` reports to total them over a run."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[Any]] = {}

    def add(self, field: str, kind: str, example: str = "", detail: str = "", n: int = 1) -> None:
        entry = self._entries.get((field, kind))
        if entry is None:
            self._entries[(field, kind)] = [n, example[:EXAMPLE_CHARS], detail]
        else:
            entry[0] += n

    def merge(self, other: ProblemReport) -> None:
        for p in other:
            self.add(p.field, p.kind, p.example, p.detail, p.count)

    def __iter__(self) -> Iterator[Problem]:
        for (field, kind), (count, example, detail) in sorted(self._entries.items()):
            yield Problem(field, kind, count, example, detail)

    def __len__(self) -> int:
        """The number of distinct (field, kind) entries; 0 for a clean conversion."""
        return len(self._entries)

    def count(self, field: str | None = None, kind: str | None = None) -> int:
        """Occurrences, optionally of one field and/or one kind only."""
        return sum(
            entry[0]
            for (f, k), entry in self._entries.items()
            if (field is None or f == field) and (kind is None or k == kind)
        )

    def counts(self) -> dict[str, int]:
        """Occurrences keyed ``"field:kind"``, for summaries."""
        return {f"{f}:{k}": entry[0] for (f, k), entry in sorted(self._entries.items())}

    @property
    def unknown_fields(self) -> tuple[str, ...]:
        """Names of row fields the schema does not declare (envelope keys excluded)."""
        return tuple(
            f
            for (f, k) in sorted(self._entries)
            if k == UNKNOWN_FIELD and not f.startswith(ENVELOPE_FIELD)
        )

    def as_dicts(self) -> list[dict[str, Any]]:
        """Plain dicts, for a run manifest."""
        return [
            {"field": p.field, "kind": p.kind, "count": p.count, "example": p.example}
            | ({"detail": p.detail} if p.detail else {})
            for p in self
        ]

    def __repr__(self) -> str:
        return f"ProblemReport({self.as_dicts()!r})"
