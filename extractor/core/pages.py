"""Which pages of one entity to ask for, and when a walk over them is whole.

12Twenty lists are paged by number (``PageSize`` <= 500, ``PageNumber`` from 1) and every
page repeats ``Total``, the item count at the moment the page was served. Page-number paging
over data that changes can skip rows, and a skipped row that did not change is never brought
back by an incremental run, so :class:`PageWalk` watches ``Total`` and re-fetches exactly the
pages whose rows may have moved past it.

The model (each assumption is a decision; see the tests for the evidence):

- The server serves each page from one consistent state: a page's ``Total`` describes the
  same data as its ``Items``. Pages whose item count contradicts their ``Total`` are fetched
  once more, then accepted and flagged (:attr:`PageOutcome.inconsistent`).
- The list order is stable. Between two observed ``Total`` values the data moved one way:
  a larger ``Total`` means inserts (rows shift to *later* positions by at most the growth),
  a smaller one means deletions (rows shift to *earlier* positions by at most the shrink).
  Equal ``Total`` is taken to mean unchanged. A delete and an insert between two
  observations cancel out and are invisible: no paging scheme can see them; a weekly full
  walk (which also marks deletions) bounds the damage.
- Rows inserted during a walk may be missed: they were modified after the walk's frozen
  upper bound, so the next incremental run (watermark minus lookback) picks them up. Rows
  *repeated* on two pages are harmless: the sink deduplicates by ``Id``. (With a
  ``ModifyToDate`` bound, a row edited mid-walk leaves the window: that is a shrink.)
- A response whose request was sent before the latest ``Total`` change is *stale*: it is
  kept only if its ``Total`` names exactly one state seen since it was sent (the current
  one); otherwise it is discarded and the page fetched again (one request, no guessing).

From this, after a change of ``d`` rows, ``k = ceil(d / page_size)`` pages of neighbourhood
matter. After a shrink, page ``p`` now holds rows that used to sit up to ``d`` positions
later, so it stays valid only if the ``k`` pages after it had been read too; after growth,
page ``p`` holds rows from up to ``d`` positions earlier, so the ``k`` pages before it must
have been read. A walk read in order therefore re-fetches about one page per change instead
of starting over. New trailing pages (growth) are queued; pages past the new end (shrink)
are dropped.

A page moves through: pending -> in flight (:meth:`PageWalk.claim`) -> accepted
(:meth:`PageWalk.record`) -> durable (:meth:`PageWalk.mark_durable`, once the sink has
committed its rows). Only durable pages are checkpointed (:meth:`PageWalk.to_dict`), so a
crash can never record a page whose rows were lost.

A page kept through a change relies on its neighbours' *earlier* reads for the rows that
slid onto it; a neighbour may be re-fetched meanwhile, so the page is durable only once
those earlier reads are committed too (each page waits on a set of receipts). Hence the
runner's one contract: write the rows of every ``ACCEPTED`` page, even one a later change
invalidated, and pass every receipt to ``mark_durable`` once its rows are committed (a page
accepted twice has two receipts: keep both). A receipt never committed only delays
completion until the next resume, which drops such waits with the unwritten reads.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_PAGE_SIZE = 500
"""The API refuses larger pages; it is also the cheapest size (fewest requests)."""

CHECKPOINT_FORMAT = 1


def pages_needed(total: int, page_size: int = MAX_PAGE_SIZE) -> int:
    """Pages that hold ``total`` items (0 for an empty entity)."""
    _check_page_size(page_size)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    return -(-total // page_size)


def requests_needed(total: int, page_size: int = MAX_PAGE_SIZE) -> int:
    """Requests a walk costs at least: one per page, and one even when the entity is empty
    (the first page is how ``Total`` is learned)."""
    return max(1, pages_needed(total, page_size))


def minimum_requests(totals: Mapping[str, int], page_size: int = MAX_PAGE_SIZE) -> int:
    """The fewest list requests that can read every entity in ``totals`` (entity -> Total).

    Token fetches are not included: the caller adds them.
    """
    return sum(requests_needed(total, page_size) for total in totals.values())


def to_ranges(pages: Iterable[int]) -> list[tuple[int, int]]:
    """Compact page numbers into sorted inclusive ranges: ``{1, 2, 3, 7}`` -> ``[(1, 3), (7, 7)]``."""
    out: list[tuple[int, int]] = []
    for page in sorted(set(pages)):
        if out and page == out[-1][1] + 1:
            out[-1] = (out[-1][0], page)
        else:
            out.append((page, page))
    return out


def from_ranges(ranges: Iterable[Sequence[int]]) -> set[int]:
    """Inverse of :func:`to_ranges`; rejects malformed ranges with ``ValueError``."""
    pages: set[int] = set()
    for item in ranges:
        if len(item) != 2:
            raise ValueError(f"a page range has two ends, got {list(item)!r}")
        first, last = item
        if not (isinstance(first, int) and isinstance(last, int)) or not 1 <= first <= last:
            raise ValueError(f"bad page range {list(item)!r}")
        pages.update(range(first, last + 1))
    return pages


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size must be in 1..{MAX_PAGE_SIZE}, got {page_size}")


class PageStatus(enum.Enum):
    """What :meth:`PageWalk.record` did with a page.

    Whatever the status, the page's rows are real rows: writing them is safe (the sink
    deduplicates by ``Id``) and so is dropping them. Only ``ACCEPTED`` pages count toward
    completion; for the others the page simply returns to :meth:`PageWalk.pending`.
    """

    ACCEPTED = "accepted"
    """Counted as read; pass :attr:`PageOutcome.receipt` to ``mark_durable`` once written."""
    STALE = "stale"
    """Sent before ``Total`` changed and ambiguous about which state it shows: fetch again."""
    INCONSISTENT = "inconsistent"
    """Item count contradicts ``Total`` (first time for this page): fetch again."""
    OUT_OF_RANGE = "out_of_range"
    """Past the last page (e.g. after a shrink): nothing to count."""


class Change(enum.Enum):
    """How a result changed the walk's picture of the entity."""

    NONE = "none"
    GREW = "grew"
    SHRANK = "shrank"
    PAGE_SIZE = "page_size"
    """The server paged with another size than asked: every earlier page is re-fetched."""


@dataclass(frozen=True)
class Receipt:
    """Names one accepted read of a page. A re-fetch of the page gets a new receipt, so
    committing the rows of an old read can never make the new read count as durable."""

    page: int
    serial: int


@dataclass(frozen=True)
class PageOutcome:
    """The result of :meth:`PageWalk.record`."""

    page: int
    status: PageStatus
    receipt: Receipt | None
    change: Change
    total: int
    previous_total: int | None
    invalidated: tuple[int, ...] = ()
    """Pages that were accepted and must be fetched again (they are pending again)."""
    expected_items: int | None = None
    inconsistent: bool = False
    """Item count contradicts ``Total``; ``item_count < expected_items`` means the data
    shrank between the server's count and its list."""


class PageWalk:
    """The state of walking one entity's pages for one filter window.

    Typical use by a runner::

        walk = PageWalk(500)                      # or PageWalk.from_dict(checkpoint)
        while not walk.is_complete:
            for page in walk.claim(free_slots):   # only page 1 until Total is known
                send(page, walk.page_size)
            ...on each response:  out = walk.record(page, total=..., item_count=...)
            ...on a failed request: walk.release(page)
            ...after the sink commits rows: walk.mark_durable(receipts); save walk.to_dict()

    Write the rows of every ACCEPTED page and pass every receipt to ``mark_durable``;
    the rows of STALE, INCONSISTENT and OUT_OF_RANGE pages may be written or dropped.
    """

    def __init__(self, page_size: int = MAX_PAGE_SIZE) -> None:
        _check_page_size(page_size)
        self.page_size = page_size
        self.total: int | None = None
        self.reported_pages: int | None = None
        self.total_changes = 0
        self._accepted: dict[int, int] = {}  # page -> serial of its current read
        self._waiting: dict[int, set[int]] = {}  # page -> uncommitted reads it relies on
        self._in_flight: dict[int, int] = {}  # page -> epoch when it was claimed
        self._epoch_totals: list[int | None] = [None]  # Total of each epoch; last is current
        self._retried: set[int] = set()  # pages already re-fetched for inconsistency
        self._serial = 0

    # -- reading the state -------------------------------------------------------------
    @property
    def page_count(self) -> int | None:
        """Pages in the walk: from ``Total`` (or a larger ``NumberOfPages``); None before
        the first result."""
        if self.total is None:
            return None
        return max(pages_needed(self.total, self.page_size), self.reported_pages or 0)

    def pending(self) -> list[int]:
        """Pages still to fetch and not in flight, ascending. Before ``Total`` is known
        only page 1 can be asked for (fanning out blind could waste requests)."""
        if self.page_count is None:
            return [] if 1 in self._in_flight else [1]
        return [
            p
            for p in range(1, self.page_count + 1)
            if p not in self._accepted and p not in self._in_flight
        ]

    @property
    def in_flight(self) -> frozenset[int]:
        return frozenset(self._in_flight)

    @property
    def done_pages(self) -> list[int]:
        """Durable pages, ascending (what a checkpoint holds)."""
        return sorted(p for p in self._accepted if not self._waiting[p])

    @property
    def accepted_pages(self) -> list[int]:
        return sorted(self._accepted)

    @property
    def remaining_requests(self) -> int:
        """Requests still needed if nothing changes (pages in range not yet accepted)."""
        if self.page_count is None:
            return 1
        return sum(1 for p in range(1, self.page_count + 1) if p not in self._accepted)

    @property
    def all_fetched(self) -> bool:
        """Every page in range is accepted: nothing left to send (rows may not be durable)."""
        return self.page_count is not None and self.remaining_requests == 0

    @property
    def is_complete(self) -> bool:
        """Every page in range is durable under the latest ``Total`` and nothing is in
        flight: the walk is whole and its window's watermark may advance."""
        count = self.page_count
        return (
            count is not None
            and not self._in_flight
            and all(p in self._accepted and not self._waiting[p] for p in range(1, count + 1))
        )

    # -- driving the walk --------------------------------------------------------------
    def claim(self, limit: int | None = None) -> list[int]:
        """Take up to ``limit`` pending pages (all when None) and mark them in flight."""
        pages = self.pending()
        if limit is not None:
            pages = pages[: max(0, limit)]
        for page in pages:
            self._in_flight[page] = len(self._epoch_totals) - 1
        return pages

    def release(self, page: int) -> None:
        """A claimed request failed or was abandoned: the page becomes pending again."""
        self._in_flight.pop(page, None)

    def record(
        self,
        page: int,
        *,
        total: int,
        item_count: int,
        page_size: int | None = None,
        number_of_pages: int | None = None,
    ) -> PageOutcome:
        """Take in one page's envelope (``Total``, ``len(Items)``, optionally the echoed
        ``PageSize`` and ``NumberOfPages``) and say what it means for the walk."""
        if page < 1 or total < 0 or item_count < 0:
            raise ValueError(f"bad page result: page={page} total={total} items={item_count}")
        epoch = len(self._epoch_totals) - 1
        issued = self._in_flight.pop(page, epoch)
        previous = self.total
        change = Change.NONE
        invalidated: tuple[int, ...] = ()

        if page_size is not None and page_size != self.page_size:
            # Page numbers only mean something together with a size: everything read
            # under the old size is re-read. Rare (a server-side cap), so keep it simple.
            _check_page_size(page_size)
            invalidated = tuple(sorted(self._accepted))
            self._accepted.clear()
            self._waiting.clear()
            self.page_size = page_size
            self._new_epoch(total, number_of_pages)
            change = Change.PAGE_SIZE
        elif self.total is None:
            self.total = total
            self._epoch_totals[-1] = total
            self.reported_pages = number_of_pages
        elif issued != epoch and (total != self.total or total in self._epoch_totals[issued:epoch]):
            # Sent before the last change: its Total may describe an older state (or one
            # we never saw), so it cannot be placed; fetching again costs one request.
            return PageOutcome(page, PageStatus.STALE, None, change, total, previous)
        elif total != self.total:
            invalidated = self._shift(self.total, total)
            change = Change.GREW if total > self.total else Change.SHRANK
            self._new_epoch(total, number_of_pages)
        elif number_of_pages is not None:
            self.reported_pages = max(self.reported_pages or 0, number_of_pages)

        expected = self._expected_items(page)
        inconsistent = expected is not None and item_count != expected
        if inconsistent and page not in self._retried:
            self._retried.add(page)
            return PageOutcome(
                page, PageStatus.INCONSISTENT, None, change, total, previous, invalidated,
                expected, inconsistent=True,
            )  # fmt: skip
        count = self.page_count or 0
        if page > count:
            status, receipt = PageStatus.OUT_OF_RANGE, None
        else:
            self._serial += 1
            self._accepted[page] = self._serial
            self._waiting[page] = {self._serial}
            status, receipt = PageStatus.ACCEPTED, Receipt(page, self._serial)
        return PageOutcome(
            page, status, receipt, change, total, previous, invalidated, expected, inconsistent
        )

    def mark_durable(self, receipts: Iterable[Receipt]) -> list[int]:
        """Record that the rows of these reads are committed (current or superseded reads
        alike); returns the pages that became durable."""
        serials = {receipt.serial for receipt in receipts}
        became: list[int] = []
        for page, waiting in self._waiting.items():
            if waiting and not (waiting - serials):
                became.append(page)
            waiting -= serials
        return sorted(became)

    # -- internals ---------------------------------------------------------------------
    def _new_epoch(self, total: int, number_of_pages: int | None) -> None:
        if self.total is not None and total != self.total:
            self.total_changes += 1
        self.total = total
        self.reported_pages = number_of_pages
        self._epoch_totals.append(total)
        self._retried.clear()

    def _expected_items(self, page: int) -> int | None:
        """Items page ``page`` must hold under the current Total; None where Total says
        nothing (pages only a larger ``NumberOfPages`` announced)."""
        assert self.total is not None
        needed = pages_needed(self.total, self.page_size)
        if page <= needed:
            return min(self.page_size, self.total - (page - 1) * self.page_size)
        return None if page <= (self.page_count or 0) else 0

    def _shift(self, old: int, new: int) -> tuple[int, ...]:
        """Drop accepted pages whose rows may have moved past them; the pages kept now also
        wait on the reads of the neighbours their new rows came from (module docstring)."""
        size = self.page_size
        k = -(-abs(new - old) // size)
        old_needed = pages_needed(old, size)
        new_count = pages_needed(new, size)
        read = set(self._accepted)
        drop: list[int] = []
        inherit: dict[int, set[int]] = {}
        for p in sorted(read):
            if new < old:
                neighbours = range(p + 1, min(p + k, old_needed) + 1)
            else:
                neighbours = range(max(1, p - k), p)
            if p > new_count or any(q not in read for q in neighbours):
                drop.append(p)
            else:
                inherit[p] = set().union(*(self._waiting[q] for q in neighbours))
        for p, serials in inherit.items():
            self._waiting[p] |= serials
        for p in drop:
            del self._accepted[p]
            del self._waiting[p]
        return tuple(drop)

    # -- checkpoints -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready checkpoint: page size, Total and the *durable* pages as ranges.

        In-flight and accepted-but-unwritten pages are left out on purpose: after a crash
        they are fetched again.
        """
        return {
            "format": CHECKPOINT_FORMAT,
            "page_size": self.page_size,
            "total": self.total,
            "number_of_pages": self.reported_pages,
            "done": [list(r) for r in to_ranges(self.done_pages)],
            "total_changes": self.total_changes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PageWalk:
        """Restore a walk from :meth:`to_dict` output; ``ValueError`` if it is malformed."""
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown page checkpoint format {data.get('format')!r}")
        walk = cls(_int(data, "page_size"))
        total = data.get("total")
        pages = data.get("number_of_pages")
        done = from_ranges(data.get("done") or [])
        if total is not None and (not isinstance(total, int) or total < 0):
            raise ValueError(f"bad total {total!r}")
        if pages is not None and (not isinstance(pages, int) or pages < 0):
            raise ValueError(f"bad number_of_pages {pages!r}")
        if total is None and done:
            raise ValueError("a checkpoint with done pages must know its total")
        walk.total, walk.reported_pages = total, pages
        walk._epoch_totals = [total]
        walk.total_changes = _int(data, "total_changes", default=0)
        for page in sorted(done):
            if page <= (walk.page_count or 0):
                walk._serial += 1
                walk._accepted[page] = walk._serial
                walk._waiting[page] = set()
        return walk


def _int(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"checkpoint field {key!r} must be an integer, got {value!r}")
    return value
