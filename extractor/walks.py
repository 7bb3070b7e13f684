"""One entity's share of a job: what to fetch next, what its bodies become, its checkpoint.

Two kinds of work exist:

- :class:`PagedWork`, a list endpoint walked page by page under a :class:`PageWalk`, with
  the job's frozen window as filter;
- :class:`OptionsWork`, one request per lookup (``/lookups/{id}/options``), whose Ids are
  known once the lookups are.

Both turn bodies into (rows, key) pairs for the sink and describe themselves as a JSON
checkpoint: the version being written, the parts already durable, and what was fetched.
A body is durable from the moment it is spooled; a key is *done* in the checkpoint once
a committed part holds its rows. Spooled bodies not yet done are replayed on resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from extractor.core.pages import PageStatus, PageWalk, Receipt, from_ranges, to_ranges
from extractor.core.watermark import Window
from extractor.errors import SchemaError
from extractor.records.convert import ConvertedBatch, Converter
from extractor.records.schema import EntitySchema
from extractor.sink.parquet import CommittedPart

WORK_FORMAT = 1


@dataclass
class Converted:
    """Rows ready to write, per key, and the conversion reports."""

    rows: list[tuple[int, pa.RecordBatch]] = field(default_factory=list)
    reports: list[ConvertedBatch] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # keys whose rows do not count
    refetch: int = 0  # pages the walk asked for again


def parts_to_json(parts: Sequence[CommittedPart]) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "keys": [list(r) for r in to_ranges(p.keys)], "rows": p.rows}
        for p in parts
    ]


def parts_from_json(raw: Sequence[dict[str, Any]]) -> list[CommittedPart]:
    return [
        CommittedPart(str(p["name"]), tuple(sorted(from_ranges(p["keys"]))), int(p["rows"]))
        for p in raw
    ]


class PagedWork:
    """A list endpoint's pages for one window."""

    kind = "pages"
    spool_prefix = "p"

    def __init__(self, schema: EntitySchema, window: Window, walk: PageWalk) -> None:
        self.schema = schema
        self.window = window
        self.walk = walk
        self.converter = Converter(schema)
        # Receipts of accepted reads not yet in a committed part, per page in write order:
        # a page read twice (re-fetched after a Total change) has two, and each must reach
        # mark_durable when the part holding *that* read's rows is committed.
        self._receipts: dict[int, list[Receipt]] = {}
        self._misnumbered: dict[int, int] = {}

    @property
    def params(self) -> dict[str, str]:
        """The window's filters, for entities the API filters by modify date."""
        return self.window.params() if self.schema.modify_filter else {}

    def claim(self) -> int | None:
        pages = self.walk.claim(1)
        return pages[0] if pages else None

    def release(self, key: int) -> None:
        self.walk.release(key)

    def request(self, key: int) -> tuple[str, dict[str, str | int]]:
        params: dict[str, str | int] = {"PageSize": self.walk.page_size, "PageNumber": key}
        params.update(self.params)
        return self.schema.path, params

    def fetched_all(self) -> bool:
        return self.walk.all_fetched and not self.walk.in_flight

    @property
    def known_total(self) -> int | None:
        return self.walk.page_count

    def convert(self, bodies: Sequence[tuple[int, bytes]]) -> Converted:
        """Convert pages and record them in the walk; rows of pages it rejects are dropped."""
        report = self.converter.convert_pages([b for _, b in bodies])
        out = Converted(reports=[report])
        offset = 0
        for (page, _), meta in zip(bodies, report.pages, strict=True):
            if meta.page_number != page:
                # Some servers answer an out-of-range page with another one: not this page.
                self._misnumbered[page] = self._misnumbered.get(page, 0) + 1
                if self._misnumbered[page] > 2:
                    raise SchemaError(
                        f"{self.schema.path}: asked for page {page}, the server keeps "
                        f"answering with page {meta.page_number}"
                    )
                self.walk.release(page)
                out.dropped.append(page)
                out.refetch += 1
                offset += meta.items
                continue
            outcome = self.walk.record(
                page,
                total=meta.total,
                item_count=meta.items,
                page_size=meta.page_size,
                number_of_pages=meta.number_of_pages,
            )
            out.refetch += len(outcome.invalidated)
            if outcome.status is PageStatus.ACCEPTED and outcome.receipt is not None:
                self._receipts.setdefault(page, []).append(outcome.receipt)
                out.rows.append((page, report.record_batch.slice(offset, meta.items)))
            else:
                out.dropped.append(page)
                out.refetch += outcome.status is not PageStatus.OUT_OF_RANGE
            offset += meta.items
        return out

    def committed(self, part: CommittedPart) -> None:
        receipts = []
        for key in part.keys:
            pending = self._receipts.get(key)
            if pending:
                receipts.append(pending.pop(0))
        self.walk.mark_durable(receipts)

    def state(self) -> dict[str, Any]:
        return {"window": self.window.to_dict(), "walk": self.walk.to_dict()}

    @classmethod
    def restore(cls, schema: EntitySchema, data: dict[str, Any]) -> PagedWork:
        return cls(schema, Window.from_dict(data["window"]), PageWalk.from_dict(data["walk"]))


class OptionsWork:
    """Each lookup's options: one request per lookup Id, a bare JSON array each."""

    kind = "options"
    spool_prefix = "l"

    def __init__(
        self, schema: EntitySchema, ids: list[int] | None = None, done: set[int] | None = None
    ):
        self.schema = schema
        self.converter = Converter(schema)
        self.ids = ids  # None until every lookup Id is known
        self.done: set[int] = done or set()  # in a committed part
        self._claimed: set[int] = set()
        self._received: set[int] = set()

    def set_ids(self, ids: Sequence[int]) -> None:
        self.ids = sorted(set(ids))

    def claim(self) -> int | None:
        if self.ids is None:
            return None
        for lookup_id in self.ids:
            if (
                lookup_id not in self.done
                and lookup_id not in self._claimed
                and lookup_id not in self._received
            ):
                self._claimed.add(lookup_id)
                return lookup_id
        return None

    def release(self, key: int) -> None:
        self._claimed.discard(key)

    def request(self, key: int) -> tuple[str, dict[str, str | int]]:
        return f"/api/v2/lookups/{key}/options", {}

    def fetched_all(self) -> bool:
        return (
            self.ids is not None
            and not self._claimed
            and all(i in self.done or i in self._received for i in self.ids)
        )

    @property
    def known_total(self) -> int | None:
        return None if self.ids is None else len(self.ids)

    def convert(self, bodies: Sequence[tuple[int, bytes]]) -> Converted:
        """Convert every body first, then take them in: a malformed one changes nothing."""
        reports = [self.converter.convert_array(body) for _, body in bodies]
        out = Converted(reports=reports)
        for (lookup_id, _), report in zip(bodies, reports, strict=True):
            self._claimed.discard(lookup_id)
            self._received.add(lookup_id)
            batch = report.record_batch
            ids = pa.array([lookup_id] * batch.num_rows, pa.int64())
            schema = batch.schema.insert(0, pa.field("LookupId", pa.int64(), nullable=False))
            tagged = pa.RecordBatch.from_arrays([ids, *batch.columns], schema=schema)
            out.rows.append((lookup_id, tagged))
        return out

    def committed(self, part: CommittedPart) -> None:
        self.done.update(part.keys)

    def state(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "done": [list(r) for r in to_ranges(self.done)],
        }

    @classmethod
    def restore(cls, schema: EntitySchema, data: dict[str, Any]) -> OptionsWork:
        ids = data.get("ids")
        return cls(
            schema,
            None if ids is None else [int(i) for i in ids],
            from_ranges(data.get("done") or []),
        )


class DetailWork:
    """Each pending record's detail endpoint, ``{path}/{Id}``: one request per record.

    The queue is derived, not stored: the Ids of the entity's snapshot whose details are
    pending (``_detail_fetched_at`` null), less those already fetched into committed parts
    or spooled. A 404 means the record is gone: it is remembered and marked deleted.
    """

    kind = "details"
    spool_prefix = "d"

    def __init__(
        self,
        schema: EntitySchema,
        ids: list[int] | None = None,
        done: set[int] | None = None,
        gone: set[int] | None = None,
    ) -> None:
        self.schema = schema
        self.converter = Converter(schema, detail=True)
        self.ids = ids  # None until the entity's list rows are published this run
        self.done: set[int] = done or set()  # in a committed part
        self.gone: set[int] = gone or set()  # answered 404
        self._claimed: set[int] = set()
        self._received: set[int] = set()

    def set_ids(self, ids: Sequence[int]) -> None:
        """The pending Ids, less those already fetched (committed, spooled and replayed,
        in flight, or gone): what is left is exactly what still needs a request, so
        :meth:`fetched_all` is true as soon as nothing does."""
        taken = self.done | self.gone | self._received | self._claimed
        self.ids = [i for i in dict.fromkeys(ids) if i not in taken]

    def claim(self) -> int | None:
        if not self.ids:
            return None
        candidate = self.ids.pop()
        self._claimed.add(candidate)
        return candidate

    def release(self, key: int) -> None:
        if key in self._claimed:
            self._claimed.discard(key)
            if self.ids is not None:
                self.ids.append(key)

    def forget(self, key: int) -> None:
        """The record is gone (404): no row, no retry."""
        self._claimed.discard(key)
        self.gone.add(key)

    def request(self, key: int) -> tuple[str, dict[str, str | int]]:
        return f"{self.schema.path}/{key}", {}

    def fetched_all(self) -> bool:
        return self.ids is not None and not self.ids and not self._claimed

    @property
    def known_total(self) -> int | None:
        if self.ids is None:
            return None
        return len(self.ids) + len(self._claimed) + len(self._received) + len(self.done)

    def convert(self, bodies: Sequence[tuple[int, bytes]]) -> Converted:
        report = self.converter.convert_objects([b for _, b in bodies])
        out = Converted(reports=[report])
        for row, (key, _) in enumerate(bodies):
            self._claimed.discard(key)
            self._received.add(key)
            out.rows.append((key, report.record_batch.slice(row, 1)))
        return out

    def committed(self, part: CommittedPart) -> None:
        self.done.update(part.keys)

    def state(self) -> dict[str, Any]:
        return {
            "done": [list(r) for r in to_ranges(self.done)],
            "gone": sorted(self.gone),
        }

    @classmethod
    def restore(cls, schema: EntitySchema, data: dict[str, Any]) -> DetailWork:
        return cls(
            schema,
            None,
            from_ranges(data.get("done") or []),
            {int(i) for i in data.get("gone") or []},
        )


Work = PagedWork | OptionsWork | DetailWork
