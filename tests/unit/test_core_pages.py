"""extractor.core.pages: page arithmetic and the PageWalk state machine.

The property tests drive a walk against a tiny in-memory server whose rows are deleted or
inserted at random positions while pages are in flight, delivered out of order, written,
and the process "crashes" and resumes from its checkpoint. The invariant: when the walk
says it is complete, the pages it holds as done contain every original row that was not
deleted. Rows inserted during the walk may be missed (the next incremental run gets them).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.core.pages import (
    MAX_PAGE_SIZE,
    Change,
    PageStatus,
    PageWalk,
    Receipt,
    from_ranges,
    minimum_requests,
    pages_needed,
    requests_needed,
    to_ranges,
)

# -- arithmetic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "size", "pages"),
    [(0, 500, 0), (1, 500, 1), (500, 500, 1), (501, 500, 2), (277, 25, 12), (1000, 1, 1000)],
)
def test_pages_needed(total: int, size: int, pages: int) -> None:
    assert pages_needed(total, size) == pages


def test_an_empty_entity_still_costs_one_request() -> None:
    assert requests_needed(0) == 1
    assert requests_needed(1001) == 3


def test_minimum_requests_sums_entities_at_max_page_size() -> None:
    assert minimum_requests({"a": 0, "b": 1000, "c": 1001}) == 1 + 2 + 3
    assert minimum_requests({}) == 0
    assert minimum_requests({"a": 100}, page_size=25) == 4


@pytest.mark.parametrize("size", [0, -1, MAX_PAGE_SIZE + 1])
def test_page_size_outside_the_api_range_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="page size"):
        pages_needed(10, size)
    with pytest.raises(ValueError, match="page size"):
        PageWalk(size)


def test_negative_total_is_refused() -> None:
    with pytest.raises(ValueError, match="total"):
        pages_needed(-1)


@given(st.sets(st.integers(1, 300)))
def test_ranges_round_trip_and_are_compact(pages: set[int]) -> None:
    ranges = to_ranges(pages)
    assert from_ranges(ranges) == pages
    # compact: ranges neither touch nor overlap
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert first > last + 1


@pytest.mark.parametrize("bad", [[[3, 1]], [[0, 2]], [[1]], [[1, 2, 3]], [["1", 2]]])
def test_malformed_ranges_are_refused(bad: list[list[object]]) -> None:
    with pytest.raises(ValueError, match="range"):
        from_ranges(bad)  # type: ignore[arg-type]


# -- the walk, by example --------------------------------------------------------------


def fetch_all(walk: PageWalk, total: int) -> None:
    """Fetch and write every pending page of an unchanging entity."""
    while not walk.is_complete:
        for page in walk.claim():
            items = max(0, min(walk.page_size, total - (page - 1) * walk.page_size))
            out = walk.record(page, total=total, item_count=items)
            if out.receipt:
                walk.mark_durable([out.receipt])


def test_a_fresh_walk_asks_only_for_page_one_until_total_is_known() -> None:
    walk = PageWalk(100)
    assert walk.pending() == [1]
    assert walk.remaining_requests == 1
    assert walk.claim(3) == [1]
    assert walk.pending() == []
    out = walk.record(1, total=1234, item_count=100)
    assert out.status is PageStatus.ACCEPTED and out.change is Change.NONE
    assert walk.page_count == 13
    assert walk.pending() == list(range(2, 14))
    assert walk.claim(2) == [2, 3]
    assert walk.in_flight == {2, 3}


def test_complete_only_once_every_page_is_durable() -> None:
    walk = PageWalk(100)
    walk.claim()
    first = walk.record(1, total=150, item_count=100)
    walk.claim()
    second = walk.record(2, total=150, item_count=50)
    assert walk.all_fetched and not walk.is_complete
    assert first.receipt and second.receipt
    assert walk.mark_durable([first.receipt, second.receipt]) == [1, 2]
    assert walk.is_complete
    assert walk.done_pages == [1, 2]


def test_an_empty_entity_is_complete_after_its_first_page() -> None:
    walk = PageWalk()
    walk.claim()
    out = walk.record(1, total=0, item_count=0)
    assert out.status is PageStatus.OUT_OF_RANGE and out.receipt is None
    assert not out.inconsistent
    assert walk.is_complete


def test_not_complete_while_a_request_is_in_flight() -> None:
    walk = PageWalk(10)
    fetch_all(walk, 10)
    walk._in_flight[2] = 0  # a straggler, e.g. past the end after a shrink
    assert not walk.is_complete


def test_release_returns_a_failed_page_to_pending() -> None:
    walk = PageWalk(10)
    walk.claim()
    walk.record(1, total=30, item_count=10)
    assert walk.claim(1) == [2]
    walk.release(2)
    assert walk.pending() == [2, 3]
    assert walk.claim(0) == []


def test_an_empty_page_inside_the_range_means_the_data_shrank() -> None:
    walk = PageWalk(10)
    walk.claim()
    walk.record(1, total=30, item_count=10)
    walk.claim()
    out = walk.record(2, total=30, item_count=0)
    assert out.status is PageStatus.INCONSISTENT and out.inconsistent
    assert out.expected_items == 10 and out.receipt is None
    assert 2 in walk.pending()
    # fetched again and still contradicting Total: accepted, but flagged
    again = walk.record(2, total=30, item_count=0)
    assert again.status is PageStatus.ACCEPTED and again.inconsistent


def test_a_short_last_page_is_inconsistent_too() -> None:
    walk = PageWalk(10)
    walk.claim()
    walk.record(1, total=25, item_count=10)
    assert walk.record(3, total=25, item_count=4).status is PageStatus.INCONSISTENT
    assert walk.record(3, total=25, item_count=5).status is PageStatus.ACCEPTED


def test_items_past_the_end_are_inconsistent() -> None:
    walk = PageWalk(10)
    walk.claim()
    walk.record(1, total=10, item_count=10)
    out = walk.record(2, total=10, item_count=3)
    assert out.status is PageStatus.INCONSISTENT and out.expected_items == 0
    assert walk.record(2, total=10, item_count=3).status is PageStatus.OUT_OF_RANGE


def test_growth_queues_new_trailing_pages_and_keeps_a_read_prefix() -> None:
    walk = PageWalk(100)
    for page in range(1, 5):
        walk.claim(1)
        walk.record(page, total=1000, item_count=100)
    walk.claim(1)
    out = walk.record(5, total=1150, item_count=100)
    assert out.change is Change.GREW and out.previous_total == 1000
    assert out.invalidated == ()
    assert walk.page_count == 12
    assert walk.pending() == list(range(6, 13))
    assert walk.total_changes == 1


def test_growth_rereads_a_page_whose_predecessor_was_not_read() -> None:
    walk = PageWalk(100)
    walk.claim(1)
    walk.record(1, total=1000, item_count=100)
    assert walk.claim(3) == [2, 3, 4]
    walk.record(3, total=1000, item_count=100)  # page 2 still in flight
    out = walk.record(4, total=1010, item_count=100)
    # rows of page 2 may have slid onto page 3, which was read before the insert
    assert out.invalidated == (3,)
    assert walk.record(2, total=1010, item_count=100).status is PageStatus.ACCEPTED


def test_a_shrink_rereads_the_page_before_the_first_unread_one() -> None:
    walk = PageWalk(100)
    for page in range(1, 5):
        walk.claim(1)
        walk.record(page, total=1000, item_count=100)
    walk.claim(1)
    out = walk.record(5, total=999, item_count=100)
    assert out.change is Change.SHRANK and out.invalidated == (4,)
    assert walk.pending() == [4, *range(6, 11)]


def test_a_shrink_larger_than_a_page_rereads_more_pages() -> None:
    walk = PageWalk(100)
    for page in range(1, 5):
        walk.claim(1)
        walk.record(page, total=1000, item_count=100)
    walk.claim(1)
    out = walk.record(5, total=750, item_count=100)  # 250 rows gone: 3 pages of reach
    assert out.invalidated == (2, 3, 4)
    assert walk.page_count == 8


def test_a_shrink_drops_pages_past_the_new_end() -> None:
    walk = PageWalk(10)
    fetch_all(walk, 100)
    walk.claim()  # nothing pending: complete
    out = walk.record(1, total=55, item_count=10)
    assert out.change is Change.SHRANK
    assert walk.page_count == 6
    assert set(out.invalidated) >= {7, 8, 9, 10}
    assert all(p <= 6 for p in walk.done_pages)


def test_one_deletion_in_a_sequential_walk_costs_one_extra_request() -> None:
    walk, requests, rows = PageWalk(100), 0, 1000
    while not walk.is_complete:
        (page,) = walk.claim(1)
        requests += 1
        if page == 5 and rows == 1000:
            rows -= 1
        items = max(0, min(100, rows - (page - 1) * 100))
        out = walk.record(page, total=rows, item_count=items)
        if out.receipt:
            walk.mark_durable([out.receipt])
    assert requests == pages_needed(1000, 100) + 1


def test_a_response_sent_before_a_change_with_the_old_total_is_stale() -> None:
    walk = PageWalk(100)
    walk.claim(1)
    walk.record(1, total=1000, item_count=100)
    assert walk.claim(2) == [2, 3]
    assert walk.record(2, total=900, item_count=100).change is Change.SHRANK
    stale = walk.record(3, total=1000, item_count=100)
    assert stale.status is PageStatus.STALE and stale.receipt is None
    assert 3 in walk.pending()


def test_a_response_sent_before_a_change_showing_the_new_total_is_kept() -> None:
    walk = PageWalk(100)
    walk.claim(1)
    walk.record(1, total=1000, item_count=100)
    walk.claim(2)
    walk.record(2, total=900, item_count=100)
    assert walk.record(3, total=900, item_count=100).status is PageStatus.ACCEPTED


def test_a_total_seen_twice_since_a_request_was_sent_makes_it_ambiguous() -> None:
    walk = PageWalk(100)
    walk.claim(1)
    walk.record(1, total=1000, item_count=100)
    assert walk.claim(2) == [2, 3]  # sent while Total was 1000
    walk.claim(1)  # page 4
    walk.record(4, total=900, item_count=100)
    walk.record(5, total=1000, item_count=100)  # sent later; back to 1000: a second change
    # page 2 says 1000: the first state or the third? It cannot tell.
    assert walk.record(2, total=1000, item_count=100).status is PageStatus.STALE
    # page 3 says 900: a state that is no longer current
    assert walk.record(3, total=900, item_count=100).status is PageStatus.STALE


def test_a_receipt_superseded_by_a_change_does_not_mark_its_page_durable() -> None:
    walk = PageWalk(100)
    walk.claim(1)
    old = walk.record(1, total=1000, item_count=100).receipt
    walk.claim(1)
    out = walk.record(2, total=900, item_count=100)  # page 1 may now lack a row of page 2
    assert out.invalidated == (1,)
    assert old is not None
    assert walk.mark_durable([old]) == []
    assert walk.claim(1) == [1]
    new = walk.record(1, total=900, item_count=100).receipt
    assert new is not None and new != old
    assert walk.mark_durable([new]) == [1]
    assert walk.done_pages == [1]
    assert walk.mark_durable([Receipt(99, 1234)]) == []


def test_a_page_kept_through_a_change_waits_for_its_neighbours_earlier_read() -> None:
    walk = PageWalk(1)
    walk.claim(1)
    first = walk.record(1, total=3, item_count=1).receipt
    walk.claim(1)
    second = walk.record(2, total=3, item_count=1).receipt
    assert first is not None and second is not None
    walk.claim(1)
    # a row before page 2 was deleted: page 2's row slid onto page 1, which stays valid
    # only because page 2's earlier read (now invalidated) holds that row
    out = walk.record(3, total=2, item_count=0)
    assert out.invalidated == (2,) and walk.accepted_pages == [1]
    assert walk.mark_durable([first]) == []
    assert walk.to_dict()["done"] == []  # a crash now must not trust page 1
    assert walk.mark_durable([second]) == [1]
    assert walk.to_dict()["done"] == [[1, 1]]


def test_a_server_side_page_size_is_adopted() -> None:
    walk = PageWalk(500)
    walk.claim()
    out = walk.record(1, total=250, item_count=100, page_size=100)
    assert out.change is Change.PAGE_SIZE and out.status is PageStatus.ACCEPTED
    assert walk.page_size == 100 and walk.pending() == [2, 3]


def test_a_page_size_change_mid_walk_rereads_everything() -> None:
    walk = PageWalk(100)
    fetch_all(walk, 300)
    out = walk.record(2, total=300, item_count=50, page_size=50)
    assert out.change is Change.PAGE_SIZE and set(out.invalidated) == {1, 2, 3}
    assert walk.accepted_pages == [2] and walk.page_count == 6


def test_a_larger_number_of_pages_extends_the_walk() -> None:
    walk = PageWalk(10)
    walk.claim()
    walk.record(1, total=20, item_count=10, number_of_pages=3)
    assert walk.page_count == 3
    # nothing is known about page 3's items: any count is accepted
    assert walk.record(3, total=20, item_count=0).status is PageStatus.ACCEPTED
    walk.record(2, total=20, item_count=10, number_of_pages=4)
    assert walk.page_count == 4


def test_bad_results_are_refused() -> None:
    walk = PageWalk()
    for page, total, items in [(0, 1, 1), (1, -1, 0), (1, 1, -1)]:
        with pytest.raises(ValueError, match="bad page result"):
            walk.record(page, total=total, item_count=items)


# -- checkpoints -----------------------------------------------------------------------


def test_a_checkpoint_holds_only_durable_pages_as_ranges() -> None:
    walk = PageWalk(10)
    walk.claim()
    receipts = [walk.record(1, total=100, item_count=10).receipt]
    walk.claim(4)
    for page in (2, 3, 5):
        receipts.append(walk.record(page, total=100, item_count=10).receipt)
    walk.mark_durable([r for r in receipts if r and r.page != 3])
    data = walk.to_dict()
    assert data == {
        "format": 1,
        "page_size": 10,
        "total": 100,
        "number_of_pages": None,
        "done": [[1, 2], [5, 5]],
        "total_changes": 0,
    }
    restored = PageWalk.from_dict(json.loads(json.dumps(data)))
    assert restored.to_dict() == data
    assert restored.pending() == [3, 4, *range(6, 11)]
    assert not restored.in_flight


def test_a_fresh_walk_round_trips() -> None:
    data = PageWalk().to_dict()
    assert PageWalk.from_dict(data).to_dict() == data


@pytest.mark.parametrize(
    "patch",
    [
        {"format": 2},
        {"page_size": "500"},
        {"page_size": 0},
        {"total": -1},
        {"total": None, "done": [[1, 1]]},
        {"done": [[2, 1]]},
        {"number_of_pages": -3},
        {"total_changes": True},
    ],
)
def test_malformed_checkpoints_are_refused(patch: dict[str, object]) -> None:
    data = {**PageWalk(10).to_dict(), "total": 30, "done": [[1, 1]], **patch}
    with pytest.raises(ValueError, match=r"\w"):
        PageWalk.from_dict(data)


def test_a_checkpoint_drops_done_pages_past_its_total() -> None:
    data = {**PageWalk(10).to_dict(), "total": 15, "done": [[1, 5]]}
    assert PageWalk.from_dict(data).done_pages == [1, 2]


# -- the walk against a changing server (property-based) -------------------------------


@dataclass
class Sim:
    """A server with a mutable ordered row list, and a runner around one PageWalk that
    writes the rows of every accepted read in arrival order (``written`` survives crashes,
    ``buffered`` does not)."""

    rows: list[int]
    walk: PageWalk
    next_id: int = 10_000
    sent: list[int] = field(default_factory=list)
    served: list[tuple[int, int, frozenset[int], int]] = field(default_factory=list)
    buffered: list[tuple[Receipt, frozenset[int]]] = field(default_factory=list)
    written: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)
    requests: int = 0
    fetched: list[int] = field(default_factory=list)

    def serve(self, index: int) -> None:
        page = self.sent.pop(index)
        size = self.walk.page_size
        items = frozenset(self.rows[(page - 1) * size : page * size])
        self.served.append((page, len(self.rows), items, len(items)))

    def deliver(self, index: int) -> None:
        page, total, items, count = self.served.pop(index)
        out = self.walk.record(page, total=total, item_count=count)
        if out.receipt is not None:
            self.buffered.append((out.receipt, items))

    def write(self, count: int) -> None:
        """Commit the first ``count`` buffered reads (a file holds a prefix of them)."""
        batch, self.buffered = self.buffered[:count], self.buffered[count:]
        for _, items in batch:
            self.written |= items
        self.walk.mark_durable(receipt for receipt, _ in batch)

    def crash(self) -> None:
        data = json.loads(json.dumps(self.walk.to_dict()))
        self.walk = PageWalk.from_dict(data)
        self.sent.clear()
        self.served.clear()
        self.buffered.clear()


def drive(
    rng: random.Random,
    *,
    initial: int,
    page_size: int,
    kinds: tuple[str, ...],
    mutations: int,
    concurrency: int,
    crashes: int,
) -> Sim:
    sim = Sim(rows=list(range(initial)), walk=PageWalk(page_size))
    originals = set(sim.rows)
    mutated_since_serve = False
    for _ in range(2000):
        if sim.walk.is_complete:
            break
        actions = []
        if len(sim.sent) + len(sim.served) < concurrency and sim.walk.pending():
            actions.append("claim")
        if sim.sent:
            actions.append("serve")
        if sim.served:
            actions.append("deliver")
        if sim.buffered:
            actions.append("write")
        # in sequential mode at most one burst of one kind between two served pages
        if mutations and (concurrency > 1 or not mutated_since_serve):
            actions.append("mutate")
        if crashes:
            actions.append("crash")
        action = rng.choice(actions)
        if action == "claim":
            for page in sim.walk.claim(1):
                sim.sent.append(page)
                sim.requests += 1
                sim.fetched.append(page)
        elif action == "serve":
            sim.serve(rng.randint(0, len(sim.sent) - 1))
            mutated_since_serve = False
        elif action == "deliver":
            sim.deliver(rng.randint(0, len(sim.served) - 1))
        elif action == "write":
            sim.write(rng.randint(1, len(sim.buffered)))
        elif action == "mutate":
            mutations -= 1
            mutated_since_serve = True
            kind = rng.choice(kinds)
            for _ in range(rng.randint(1, page_size + 2)):
                if kind == "delete" and sim.rows:
                    victim = sim.rows.pop(rng.randint(0, len(sim.rows) - 1))
                    sim.deleted.add(victim)
                elif kind == "insert":
                    sim.rows.insert(rng.randint(0, len(sim.rows)), sim.next_id)
                    sim.next_id += 1
        else:
            crashes -= 1
            sim.crash()
        assert PageWalk.from_dict(sim.walk.to_dict()).to_dict() == sim.walk.to_dict()
    assert sim.walk.is_complete, "the walk never completed"
    count = sim.walk.page_count
    assert count is not None and sim.walk.done_pages == list(range(1, count + 1))
    missing = (originals - sim.deleted) - sim.written
    assert not missing, f"rows skipped: {sorted(missing)}"
    return sim


# Kept small so the unit suite stays fast; CORE_WALK_EXAMPLES=5000 for a deep run.
WALK_SETTINGS = settings(
    max_examples=int(os.environ.get("CORE_WALK_EXAMPLES", "150")), deadline=None
)


@WALK_SETTINGS
@given(st.randoms(use_true_random=True), st.integers(0, 60), st.integers(1, 7), st.integers(1, 3))
def test_an_unchanging_entity_costs_exactly_one_request_per_page(
    rng: random.Random, initial: int, page_size: int, concurrency: int
) -> None:
    sim = drive(
        rng, initial=initial, page_size=page_size, kinds=(), mutations=0,
        concurrency=concurrency, crashes=0,
    )  # fmt: skip
    assert sim.requests == requests_needed(initial, page_size)
    assert sorted(sim.fetched) == list(range(1, requests_needed(initial, page_size) + 1))


@WALK_SETTINGS
@given(st.randoms(use_true_random=True), st.integers(0, 60), st.integers(1, 7), st.integers(1, 3))
def test_deletions_during_a_concurrent_walk_skip_no_survivor(
    rng: random.Random, initial: int, page_size: int, concurrency: int
) -> None:
    drive(
        rng, initial=initial, page_size=page_size, kinds=("delete",), mutations=4,
        concurrency=concurrency, crashes=0,
    )  # fmt: skip


@WALK_SETTINGS
@given(st.randoms(use_true_random=True), st.integers(0, 60), st.integers(1, 7), st.integers(1, 3))
def test_inserts_during_a_concurrent_walk_skip_no_original_row(
    rng: random.Random, initial: int, page_size: int, concurrency: int
) -> None:
    drive(
        rng, initial=initial, page_size=page_size, kinds=("insert",), mutations=4,
        concurrency=concurrency, crashes=0,
    )  # fmt: skip


@WALK_SETTINGS
@given(st.randoms(use_true_random=True), st.integers(0, 60), st.integers(1, 7))
def test_alternating_inserts_and_deletes_in_a_sequential_walk_skip_nothing(
    rng: random.Random, initial: int, page_size: int
) -> None:
    drive(
        rng, initial=initial, page_size=page_size, kinds=("delete", "insert"), mutations=5,
        concurrency=1, crashes=0,
    )  # fmt: skip


def run_rounds(
    rng: random.Random,
    *,
    initial: int,
    page_size: int,
    concurrency: int,
    mutations: int,
    odds: tuple[float, float, float] = (0.1, 0.15, 0.3),
) -> Sim:
    """A runner-shaped driver: each round claims what it may, serves the requests in a
    random order (a deletion may land before any of them), delivers them in another
    order, commits a random prefix of what it buffered, and sometimes crashes. Deep
    interleavings (crash between two commits after a change) come up far more often
    than under the action-by-action driver."""
    sim = Sim(rows=list(range(initial)), walk=PageWalk(page_size))
    originals = set(sim.rows)
    for _ in range(500):
        if sim.walk.is_complete:
            break
        for page in sim.walk.claim(concurrency):
            sim.sent.append(page)
            sim.requests += 1
        while sim.sent:
            if mutations and sim.rows and rng.random() < odds[0]:
                mutations -= 1
                for _ in range(rng.randint(1, min(len(sim.rows), page_size + 2))):
                    sim.deleted.add(sim.rows.pop(rng.randrange(len(sim.rows))))
            sim.serve(rng.randrange(len(sim.sent)))
        rng.shuffle(sim.served)
        while sim.served:
            sim.deliver(0)
        if sim.buffered and rng.random() < odds[1]:
            sim.write(rng.randint(1, len(sim.buffered)))
        if rng.random() < odds[2]:
            sim.crash()
    else:
        sim.write(len(sim.buffered))
    assert sim.walk.is_complete, "the walk never completed"
    missing = (originals - sim.deleted) - sim.written
    assert not missing, f"rows skipped: {sorted(missing)}"
    return sim


@WALK_SETTINGS
@given(st.randoms(use_true_random=True), st.integers(0, 40), st.integers(1, 5), st.integers(1, 3))
def test_deletions_crashes_and_resumes_in_runner_rounds_lose_no_row(
    rng: random.Random, initial: int, page_size: int, concurrency: int
) -> None:
    run_rounds(rng, initial=initial, page_size=page_size, concurrency=concurrency, mutations=5)


@WALK_SETTINGS
@given(st.randoms(use_true_random=True), st.integers(0, 60), st.integers(1, 7), st.integers(1, 3))
def test_crashes_and_resumes_lose_no_row(
    rng: random.Random, initial: int, page_size: int, concurrency: int
) -> None:
    drive(
        rng, initial=initial, page_size=page_size, kinds=("delete",), mutations=3,
        concurrency=concurrency, crashes=2,
    )  # fmt: skip
