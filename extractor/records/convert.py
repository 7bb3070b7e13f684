"""Page bytes -> Arrow record batches under an entity's declared schema.

Usage: ``Converter(schema).convert_pages([body, ...]) -> ConvertedBatch`` with the rows of
every page (page order, then item order), each page's envelope, and a problem report.

Two paths give identical output for clean pages (a property test checks it):

* **fast, strict**: the bodies of a batch are joined by newlines and read by
  ``pyarrow.json.read_json`` with an explicit schema (DateTime read as string) and
  ``unexpected_field_behavior="error"``, in blocks parsed on every core; Items are
  flattened, DateTime strings converted vectorised, envelope counts and UTF-8 validated.
  Any surprise (an unknown field, a value of the wrong JSON kind, an odd date, a null
  item, a missing count, ...) makes it hand the whole batch to the careful path.
* **careful, slow**: each body is decoded exactly (:mod:`extractor.records.decode`) and
  every value checked field by field, by name (:mod:`extractor.records.values`).

Output columns: the declared fields (the list subset for list pages, every field for
detail rows) in schema order; then, typed, any detail-only field a list row carried anyway
(reported ``unlisted_field``: its ``list`` flag is stale); then one column per undeclared
field; then ``_raw``.

* An **undeclared field** is kept as a nullable string column named after it holding the
  raw JSON text of the value (``"abc"`` with its quotes, ``12``, ``{"A":1}``; JSON null
  is NULL) and reported (``unknown_field``). Its column exists only in batches where the
  field occurs: writers must be ready for extra trailing columns. A name that cannot be a
  column (it is empty or starts with ``_``, or equals a declared or another extra column
  up to case, which DuckDB would reject) goes to ``_raw`` instead.
* A **value that does not fit** its declared type (``"abc"`` in an Int32, ``1.5`` in an
  int, an object where a string was declared, an int >= 2**63, an impossible date) leaves
  the typed cell NULL, keeps the row, puts the value's raw JSON text into ``_raw`` under
  the field's name, and is reported (``bad_value``).
* ``_raw`` is always present: ``map<string, string>``, field -> raw JSON text, NULL on clean
  rows. Raw text is re-serialised compactly: numbers keep their exact digits, strings their
  exact characters; whitespace and escapes may be spelled differently from the wire.
* Other reported cases are listed in :mod:`extractor.records.problems`. A missing key is
  NULL without a report: lists legitimately omit fields.

Errors (no partial result): a body that is not valid JSON (truncated, cut inside a UTF-8
sequence, empty, trailing data) raises MalformedPageError, a TransientError: the HTTP
layer may retry it. Valid JSON of the wrong shape (not an object, no ``Items`` array,
envelope counts missing or not non-negative integers) raises PageShapeError, a
SchemaError: retrying will not help. Both carry ``page_index``. A UTF-8 byte order mark
before a body is ignored by both paths.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from extractor.records.decode import (
    DupDict,
    MalformedPageError,
    PageShapeError,
    decode,
    dump,
    dump_list,
    kind_of,
    strip_bom,
)
from extractor.records.problems import (
    BAD_VALUE,
    CASE_VARIANT,
    DUPLICATE_KEY,
    ENVELOPE_FIELD,
    NOT_AN_OBJECT,
    UNKNOWN_FIELD,
    UNKNOWN_SUBFIELD,
    UNLISTED_FIELD,
    ProblemReport,
)
from extractor.records.schema import EntitySchema, FieldSpec, MapOf, contains
from extractor.records.values import (
    BadDateTime,
    Misfit,
    compile_checker,
    finish,
    has_datetime,
    read_type,
)

__all__ = [
    "ENVELOPE_COUNTS",
    "ITEM_KEY",
    "RAW_COLUMN",
    "RAW_TYPE",
    "ConvertedBatch",
    "Converter",
    "MalformedPageError",
    "PageMeta",
    "PageShapeError",
    "ProblemReport",
]

RAW_COLUMN = "_raw"
RAW_TYPE = pa.map_(pa.string(), pa.string())
ITEM_KEY = "$"  # the _raw key for an item that is not a JSON object
ENVELOPE_COUNTS = ("PageSize", "PageNumber", "Total", "NumberOfPages")
_MIN_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class PageMeta:
    """A page's envelope counts, and how many items it carried."""

    page_number: int
    page_size: int
    total: int
    number_of_pages: int
    items: int  # how many items the page carried


@dataclass(frozen=True, slots=True)
class ConvertedBatch:
    """The rows of a batch of bodies, their envelopes, and what was odd about them.

    Rows of ``pages[k]`` are the ``pages[k].items`` rows after those of earlier pages.
    """

    record_batch: pa.RecordBatch
    pages: tuple[PageMeta, ...]  # empty for bare arrays and detail objects
    problems: ProblemReport
    extra_fields: tuple[str, ...]  # columns after the target fields, before _raw
    path: str  # "fast" or "slow"
    fallback_reason: str | None = None  # why the fast path gave the batch up, if it did

    @property
    def num_rows(self) -> int:
        return int(self.record_batch.num_rows)


class _Refused(Exception):
    """The fast path met something it does not handle; the careful path takes the batch."""


class Converter:
    """Converts one entity's bodies to Arrow: list rows, or every field when ``detail``.

    ``arrow_schema`` is the schema of a batch without undeclared fields. ``fast=False``
    forces the careful path (tests compare the two). Instances hold no per-call state:
    one may serve several threads.
    """

    def __init__(self, schema: EntitySchema, *, detail: bool = False, fast: bool = True) -> None:
        self.schema = schema
        self.detail = detail
        self.fields: tuple[FieldSpec, ...] = schema.target_fields(detail)
        self.arrow_schema: pa.Schema = schema.arrow_schema(detail).append(
            pa.field(RAW_COLUMN, RAW_TYPE)
        )
        # Every declared field: the target ones first, then (list rows) the detail-only ones,
        # which get a typed column of their own when a list row carries them anyway.
        self._all = self.fields + tuple(f for f in schema.fields if f not in self.fields)
        self._read_types = [read_type(f.node) for f in self._all]
        self._datetime = [has_datetime(f.node) for f in self._all]
        self._plan = [(i, f.name, compile_checker(f.node)) for i, f in enumerate(self._all)]
        self._names = frozenset(f.name for f in self.fields)
        self._by_name = {f.name: i for i, f in enumerate(self._all)}
        self._by_fold = {f.name.casefold(): i for i, f in enumerate(self._all)}
        # pyarrow's JSON reader cannot build maps: such schemas always take the slow path.
        self._fast = fast and not any(contains(f.node, MapOf) for f in self.fields)
        item = pa.struct(
            [pa.field(f.name, t) for f, t in zip(self.fields, self._read_types, strict=False)]
        )
        envelope = pa.schema(
            [pa.field(k, pa.int64()) for k in ENVELOPE_COUNTS] + [pa.field("Items", pa.list_(item))]
        )
        self._parse_options = pj.ParseOptions(
            explicit_schema=envelope, unexpected_field_behavior="error"
        )

    # -- entry points ----------------------------------------------------------------------

    def convert_pages(self, pages: Sequence[bytes]) -> ConvertedBatch:
        """Convert paged-envelope bodies (``{"PageSize", ..., "Items": [...]}``).

        Raises MalformedPageError (retry) or PageShapeError (do not) for the first bad
        body, naming its index in ``pages``.
        """
        bodies = [strip_bom(p) for p in pages]
        reason = None
        if self._fast and bodies:
            try:
                return self._fast_pages(bodies)
            except _Refused as exc:
                reason = str(exc)
        return self._slow(bodies, "pages", reason)

    def convert_page(self, page: bytes) -> ConvertedBatch:
        """One paged-envelope body (see :meth:`convert_pages`)."""
        return self.convert_pages([page])

    def convert_array(self, body: bytes) -> ConvertedBatch:
        """A body that is a bare JSON array of items (``/api/v2/lookups/{id}/options``)."""
        return self._slow([strip_bom(body)], "array", None)

    def convert_objects(self, bodies: Sequence[bytes]) -> ConvertedBatch:
        """Bodies that are one JSON object each (``GET {path}/{Id}``): one row per body."""
        return self._slow([strip_bom(b) for b in bodies], "object", None)

    # -- the fast path ---------------------------------------------------------------------

    def _fast_pages(self, bodies: list[bytes]) -> ConvertedBatch:
        # The reader yields a row per JSON value, bodies unseen: with no blank body, one
        # row per body is exactly "every body holds one value" (not two and a blank).
        if not all(bodies) or any(b.isspace() for b in bodies):
            raise _Refused("a blank body")
        joined = b"\n".join(bodies)
        if any(b"\n" in b or b"\r" in b for b in bodies):
            block = len(joined) + 1  # a body over several lines: one block, one thread
        else:
            # Blocks end at our newlines; four of them keep both cores busy.
            block = max(max(map(len, bodies)) + 1, len(joined) // 4 + 1, _MIN_BLOCK)
        try:
            table = pj.read_json(
                pa.BufferReader(joined),
                read_options=pj.ReadOptions(use_threads=True, block_size=block),
                parse_options=self._parse_options,
            )
        except (pa.ArrowException, ValueError) as exc:
            raise _Refused(f"reader: {exc}") from None
        if table.num_rows != len(bodies):
            raise _Refused("a body does not hold exactly one JSON value")
        counts: dict[str, list[int]] = {}
        for key in ENVELOPE_COUNTS:
            col = table.column(key)
            if col.null_count or pc.min(col).as_py() < 0:
                raise _Refused(f"envelope {key} missing or negative")
            counts[key] = col.to_pylist()
        items = table.column("Items")
        if items.null_count:
            raise _Refused("an envelope without Items")
        structs = [chunk.flatten() for chunk in items.chunks]
        if any(s.null_count for s in structs):
            raise _Refused("an item is null")
        lengths = pc.list_value_length(items).to_pylist()
        arrays: list[pa.Array] = []
        for i, f in enumerate(self.fields):
            parts = [s.field(i) for s in structs]
            arr = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
            if self._datetime[i]:
                try:
                    arr = finish(arr, f.node)
                except (BadDateTime, pa.ArrowInvalid) as exc:
                    raise _Refused(f"{f.name}: {exc}") from None
            arrays.append(arr)
        arrays.append(pa.nulls(sum(lengths), RAW_TYPE))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema)
        if not joined.isascii():
            try:
                batch.validate(full=True)  # the reader does not check UTF-8
            except pa.ArrowInvalid as exc:
                raise _Refused(f"validation: {exc}") from None
        pages = tuple(
            PageMeta(
                page_number=counts["PageNumber"][k],
                page_size=counts["PageSize"][k],
                total=counts["Total"][k],
                number_of_pages=counts["NumberOfPages"][k],
                items=lengths[k],
            )
            for k in range(len(bodies))
        )
        return ConvertedBatch(batch, pages, ProblemReport(), (), "fast")

    # -- the careful path ------------------------------------------------------------------

    def _slow(self, bodies: list[bytes], shape: str, reason: str | None) -> ConvertedBatch:
        problems = ProblemReport()
        pages: list[PageMeta] = []
        items: list[Any] = []
        collecting = gc.isenabled()
        gc.disable()  # many small objects: spare the collector its scans (PERF-NOTES 8)
        try:
            for index, body in enumerate(bodies):
                doc = decode(body, index)
                if shape == "pages":
                    meta, page_items = _envelope(doc, index, problems)
                    pages.append(meta)
                    items.extend(page_items)
                elif shape == "array":
                    if type(doc) is not list:
                        raise PageShapeError(
                            f"body {index}: expected a JSON array, got {kind_of(doc)}",
                            page_index=index,
                        )
                    items.extend(doc)
                else:
                    if not isinstance(doc, dict):
                        raise PageShapeError(
                            f"body {index}: expected a JSON object, got {kind_of(doc)}",
                            page_index=index,
                        )
                    items.append(doc)
            batch, extras = _Rows(self, len(items), problems).build(items)
        finally:
            if collecting:
                gc.enable()
        return ConvertedBatch(batch, tuple(pages), problems, extras, "slow", reason)


class _Rows:
    """Column builders for one careful conversion."""

    def __init__(self, conv: Converter, n: int, problems: ProblemReport) -> None:
        self.conv = conv
        self.n = n
        self.problems = problems
        self.targets = len(conv.fields)
        # Target columns always; a detail-only field's column once a list row carries it.
        self.cols: list[list[Any] | None] = [[None] * n for _ in conv.fields]
        self.cols += [None] * (len(conv._all) - self.targets)
        self.raw: list[dict[str, str] | None] = [None] * n
        self.extras: dict[str, list[str | None]] = {}
        self.extra_fold: dict[str, str] = {}

    def keep_raw(self, r: int, key: str, text: str) -> None:
        cell = self.raw[r]
        if cell is None:
            self.raw[r] = {key: text}
        else:
            cell[key] = text

    def build(self, items: list[Any]) -> tuple[pa.RecordBatch, tuple[str, ...]]:
        conv = self.conv
        names = conv._names
        plan = conv._plan[: self.targets]
        cols = cast(list[list[Any]], self.cols[: self.targets])
        soft: list[str] = []
        for r, item in enumerate(items):
            if type(item) is dict and names.issuperset(item):
                # The common case: declared names only, each once.
                for idx, name, check in plan:
                    value = item.get(name)
                    if value is None:
                        continue
                    try:
                        cols[idx][r] = check(value, soft)
                    except Misfit as misfit:
                        self.misfit(r, name, value, misfit)
                        continue
                    if soft:
                        self.noted(r, name, value, soft)
            elif isinstance(item, dict):
                self.odd_row(r, item, soft)
            else:
                text = dump(item)
                self.keep_raw(r, ITEM_KEY, text)
                self.problems.add(ITEM_KEY, NOT_AN_OBJECT, text, f"an item is {kind_of(item)}")
        return self.assemble()

    def misfit(self, r: int, name: str, value: Any, misfit: Misfit) -> None:
        text = dump(value)
        self.keep_raw(r, name, text)
        self.problems.add(name, misfit.kind, text, misfit.detail)

    def noted(self, r: int, name: str, value: Any, soft: list[str]) -> None:
        """Lossless oddities inside a value that was kept typed."""
        text = dump(value)
        for kind in dict.fromkeys(soft):
            detail = "undeclared keys are only in _raw" if kind == UNKNOWN_SUBFIELD else ""
            self.problems.add(name, kind, text, detail)
        if UNKNOWN_SUBFIELD in soft:
            self.keep_raw(r, name, text)
        soft.clear()

    def odd_row(self, r: int, item: dict[str, Any], soft: list[str]) -> None:
        """A row with undeclared, case-variant or repeated keys."""
        conv = self.conv
        pairs = item.pairs if isinstance(item, DupDict) else item.items()
        slots: dict[int, list[tuple[str, Any]]] = {}
        unknown: dict[str, list[Any]] = {}
        for key, value in pairs:
            idx = conv._by_name.get(key)
            if idx is None:
                idx = conv._by_fold.get(key.casefold())
                if idx is not None and conv._all[idx].name in item:
                    idx = None  # the exact name is present too: this key is an extra
            if idx is None:
                unknown.setdefault(key, []).append(value)
            else:
                slots.setdefault(idx, []).append((key, value))
        for idx, got in slots.items():
            _, name, check = conv._plan[idx]
            if len(got) > 1:
                text = dump_list([v for _, v in got])
                self.keep_raw(r, name, text)
                self.problems.add(name, DUPLICATE_KEY, text, "the key occurs more than once")
                continue
            key, value = got[0]
            if key != name:
                self.problems.add(name, CASE_VARIANT, key, f"sent as {key!r}")
            col = self.cols[idx]
            if col is None:
                col = self.cols[idx] = [None] * self.n
            if idx >= self.targets:
                self.problems.add(name, UNLISTED_FIELD, dump(value), "declared list: false")
            try:
                col[r] = check(value, soft)
            except Misfit as misfit:
                self.misfit(r, name, value, misfit)
                continue
            if soft:
                self.noted(r, name, value, soft)
        for key, values in unknown.items():
            text = dump(values[0]) if len(values) == 1 else dump_list(values)
            self.problems.add(key, UNKNOWN_FIELD, text, "not declared in the schema")
            if len(values) > 1:
                self.problems.add(key, DUPLICATE_KEY, text, "the key occurs more than once")
            column = self.extra_column(key)
            if column is None:
                self.keep_raw(r, key, text)
            elif len(values) > 1 or values[0] is not None:
                column[r] = text

    def extra_column(self, key: str) -> list[str | None] | None:
        """The column an undeclared field goes to, or None if its name cannot be one."""
        column = self.extras.get(key)
        if column is not None:
            return column
        folded = key.casefold()
        if not key or key[0] == "_" or folded in self.conv._by_fold or folded in self.extra_fold:
            return None
        self.extra_fold[folded] = key
        column = self.extras[key] = [None] * self.n
        return column

    def assemble(self) -> tuple[pa.RecordBatch, tuple[str, ...]]:
        conv = self.conv
        arrays: list[pa.Array] = []
        fields: list[pa.Field] = []
        for idx, values in enumerate(self.cols):
            if values is None:
                continue
            arr = pa.array(values, type=conv._read_types[idx])
            if conv._datetime[idx]:
                arr = self.finish_column(idx, values, arr)
            arrays.append(arr)
            fields.append(pa.field(conv._all[idx].name, conv._all[idx].arrow_type))
        arrays.extend(pa.array(v, type=pa.string()) for v in self.extras.values())
        fields.extend(pa.field(k, pa.string()) for k in self.extras)
        arrays.append(pa.array(self.raw, type=RAW_TYPE))
        fields.append(pa.field(RAW_COLUMN, RAW_TYPE))
        batch = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
        return batch, tuple(f.name for f in fields[self.targets : -1])

    def finish_column(self, idx: int, values: list[Any], arr: pa.Array) -> pa.Array:
        """Convert a checked column's DateTimes; a value Arrow still refuses goes raw.

        The checks mirror Arrow's rules, so the per-value retry is a safety net only.
        """
        f = self.conv._all[idx]
        try:
            return finish(arr, f.node)
        except (BadDateTime, pa.ArrowInvalid):
            pass
        read = self.conv._read_types[idx]
        for r, value in enumerate(values):
            if value is None:
                continue
            try:
                finish(pa.array([value], type=read), f.node)
            except (BadDateTime, pa.ArrowInvalid) as exc:
                values[r] = None
                cell = self.raw[r]
                if cell is None or f.name not in cell:
                    text = dump(value)
                    self.keep_raw(r, f.name, text)
                    self.problems.add(f.name, BAD_VALUE, text, f"not a valid DateTime: {exc}")
        return finish(pa.array(values, type=read), f.node)


def _envelope(doc: Any, index: int, problems: ProblemReport) -> tuple[PageMeta, list[Any]]:
    """Check a decoded page envelope; returns its counts and its items.

    Envelope keys are matched case-insensitively (the exact spelling wins); other keys
    are reported and ignored.
    """

    def fail(what: str) -> PageShapeError:
        return PageShapeError(f"page {index}: {what}", page_index=index)

    if not isinstance(doc, dict):
        raise fail(f"expected a JSON object envelope, got {kind_of(doc)}")
    if isinstance(doc, DupDict):
        problems.add(ENVELOPE_FIELD, DUPLICATE_KEY, "", "an envelope key occurs twice")
    wanted = {k.casefold(): k for k in (*ENVELOPE_COUNTS, "Items")}
    found: dict[str, Any] = {}
    for key, value in doc.items():
        canonical = wanted.get(key.casefold())
        if canonical is None or (key != canonical and canonical in doc):
            problems.add(f"{ENVELOPE_FIELD}.{key}", UNKNOWN_FIELD, dump(value)[:40], "ignored")
            continue
        if key != canonical:
            problems.add(f"{ENVELOPE_FIELD}.{canonical}", CASE_VARIANT, key, f"sent as {key!r}")
        found[canonical] = value
    counts: dict[str, int] = {}
    for key in ENVELOPE_COUNTS:
        value = found.get(key)
        if type(value) is not int or value < 0:
            got = "nothing" if key not in found else dump(value)[:40]
            raise fail(f"{key} must be a non-negative integer, got {got}")
        counts[key] = value
    items = found.get("Items")
    if type(items) is not list:
        raise fail("no Items" if items is None else f"Items is {kind_of(items)}, not an array")
    meta = PageMeta(
        page_number=counts["PageNumber"],
        page_size=counts["PageSize"],
        total=counts["Total"],
        number_of_pages=counts["NumberOfPages"],
        items=len(items),
    )
    return meta, items
