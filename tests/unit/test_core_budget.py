"""extractor.core.budget: ledger arithmetic, reservations and the multi-day plan.

The central property: a caller that sends only what ``try_take`` grants never has more
than ``limit - reserve`` requests in any half-open 24-hour window (rolling) or any UTC
day (utc-day), whatever the sequence of requests and clock jumps (backwards included).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.core.budget import (
    DAY,
    Budget,
    BudgetPolicy,
    WindowKind,
    available,
    next_free_at,
    plan,
    prune_before,
    try_take,
    used,
    when_available,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()  # a Monday, noon UTC
MIDNIGHT = datetime(2026, 1, 6, tzinfo=UTC).timestamp()
ROLLING = BudgetPolicy(limit=10)
UTC_DAY = BudgetPolicy(limit=10, window=WindowKind.UTC_DAY)


def test_defaults_match_the_api_limit() -> None:
    policy = BudgetPolicy()
    assert policy.capacity == 5000 and policy.window is WindowKind.ROLLING
    assert BudgetPolicy(reserve=500).capacity == 4500


@pytest.mark.parametrize(("limit", "reserve"), [(0, 0), (10, -1), (10, 10), (10, 11)])
def test_nonsensical_policies_are_refused(limit: int, reserve: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        BudgetPolicy(limit=limit, reserve=reserve)


def test_rolling_counts_the_last_24_hours_half_open() -> None:
    ledger = [T0 - DAY, T0 - DAY + 1, T0 - 10, T0]
    assert used(ledger, T0, ROLLING) == 3  # the one at exactly T0 - DAY has expired
    assert available(ledger, T0, ROLLING) == 7
    assert used(ledger, T0 + DAY - 10, ROLLING) == 1


def test_utc_day_counts_since_midnight() -> None:
    ledger = [MIDNIGHT - 1, MIDNIGHT, MIDNIGHT + 5]
    assert used(ledger, MIDNIGHT - 1, UTC_DAY) == 3  # later entries count too (see below)
    assert used(ledger, MIDNIGHT + 10, UTC_DAY) == 2
    assert used(ledger, MIDNIGHT + DAY, UTC_DAY) == 0


def test_entries_in_the_future_count_as_used() -> None:
    """After the clock is set back, requests stamped "later" still occupy the window."""
    ledger = [T0 + 3600.0] * 4
    assert used(ledger, T0, ROLLING) == 4
    assert used(ledger, T0, UTC_DAY) == 4


def test_the_ledger_may_come_unsorted() -> None:
    ledger = [T0, T0 - 100, T0 - DAY - 5, T0 - 50]
    assert used(ledger, T0, ROLLING) == 3
    assert used(iter(ledger), T0, ROLLING) == 3
    assert next_free_at(ledger, T0, BudgetPolicy(limit=3)) == T0 - 100 + DAY


def test_when_available_waits_for_the_right_expiry() -> None:
    ledger = [T0 - 5000.0 + i for i in range(10)]  # full: 10 of 10
    assert next_free_at(ledger, T0, ROLLING) == ledger[0] + DAY
    assert when_available(ledger, T0, ROLLING, 3) == ledger[2] + DAY
    assert when_available(ledger, T0, UTC_DAY, 10) == MIDNIGHT
    assert when_available([], T0, ROLLING, 10) == T0


def test_when_available_refuses_more_than_the_capacity() -> None:
    with pytest.raises(ValueError, match="n must be"):
        when_available([], T0, BudgetPolicy(limit=10, reserve=2), 9)
    with pytest.raises(ValueError, match="n must be"):
        when_available([], T0, ROLLING, 0)


def test_try_take_grants_or_says_how_long_to_wait() -> None:
    ledger = [T0 - 3600.0] * 9
    grant = try_take(ledger, T0, ROLLING)
    assert grant.granted and grant.at == T0 and grant.wait == 0
    refused = try_take(ledger, T0, ROLLING, n=2)
    assert not refused.granted
    assert refused.at == T0 - 3600.0 + DAY and refused.wait == DAY - 3600.0


def test_the_reserve_is_left_for_other_integrations() -> None:
    policy = BudgetPolicy(limit=10, reserve=3)
    budget = Budget(policy)
    granted = sum(budget.try_take(T0 + i).granted for i in range(20))
    assert granted == 7
    assert budget.available(T0 + 20) == 0
    assert budget.used(T0 + 20) == 7


def test_budget_takes_until_exhausted_then_frees_a_day_later() -> None:
    budget = Budget(ROLLING, [T0 - 10.0])
    assert budget.try_take(T0, 9).granted
    assert not budget.try_take(T0 + 1).granted
    assert budget.next_free_at(T0 + 1) == T0 - 10 + DAY
    assert budget.when_available(T0 + 1, 2) == T0 + DAY
    assert budget.try_take(T0 - 10 + DAY).granted
    assert len(budget.ledger) == 11


def test_prune_keeps_everything_that_could_still_count() -> None:
    budget = Budget(ROLLING, [T0 - 3 * DAY, T0 - 1.5 * DAY, T0 - 10])
    budget.prune(T0)
    assert budget.ledger == [T0 - 1.5 * DAY, T0 - 10]
    assert prune_before(T0, UTC_DAY) == MIDNIGHT - 2 * DAY


# -- the invariant, property-based -----------------------------------------------------

steps = st.lists(
    st.tuples(
        st.one_of(
            st.floats(0, 120),  # busy: seconds apart
            st.floats(0, 2 * DAY),  # idle hours, days
            st.floats(-DAY, 0),  # the clock set back
            st.just(0.0),
        ),
        st.integers(1, 4),
    ),
    max_size=120,
)


def max_in_any_window(ledger: list[float], window: WindowKind) -> int:
    ledger = sorted(ledger)
    if window is WindowKind.UTC_DAY:
        return max(Counter(ts // DAY for ts in ledger).values(), default=0)
    # any half-open (x - DAY, x] is at its fullest when x is an entry
    return max(
        (i + 1 - bisect.bisect_right(ledger, ts, hi=i + 1, key=lambda t: t + DAY))
        for i, ts in enumerate(ledger)
    ) if ledger else 0  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    steps,
    st.integers(1, 8),
    st.integers(0, 3),
    st.sampled_from(WindowKind),
    st.floats(0, DAY),
)
def test_granted_requests_never_overfill_a_window(
    moves: list[tuple[float, int]], limit: int, reserve: int, window: WindowKind, start: float
) -> None:
    policy = BudgetPolicy(limit=limit + reserve, reserve=reserve, window=window)
    budget = Budget(policy)
    now = T0 + start
    for dt, n in moves:
        now += dt
        if n <= policy.capacity:
            budget.try_take(now, n)
    assert max_in_any_window(budget.ledger, window) <= limit  # = limit + reserve - reserve


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-2 * DAY, DAY), max_size=30),
    st.integers(1, 6),
    st.sampled_from(WindowKind),
    st.integers(1, 6),
)
def test_when_available_is_the_earliest_time_a_take_succeeds(
    offsets: list[float], limit: int, window: WindowKind, n: int
) -> None:
    policy = BudgetPolicy(limit=limit, window=window)
    ledger = sorted(T0 + off for off in offsets)
    n = min(n, policy.capacity)
    at = when_available(ledger, T0, policy, n)
    assert at >= T0
    assert try_take(ledger, at, policy, n).granted
    assert available(ledger, at, policy) >= n
    earlier = math.nextafter(at, -math.inf)
    if earlier >= T0:
        assert not try_take(ledger, earlier, policy, n).granted
    grant = try_take(ledger, T0, policy, n)
    assert grant.granted == (at == T0) and grant.at == at


# -- the multi-day plan ----------------------------------------------------------------


def test_plan_for_an_empty_job() -> None:
    result = plan([], T0, ROLLING, 0)
    assert result.days == 0 and result.eta == T0 and result.per_day == ()
    with pytest.raises(ValueError, match="requests"):
        plan([], T0, ROLLING, -1)


def test_plan_spreads_a_large_dump_over_days() -> None:
    result = plan([], T0, BudgetPolicy(), 12_000)
    assert result.available_now == 5000
    assert result.per_day == (5000, 5000, 2000)
    assert result.days == 3 and result.eta == T0 + 2 * DAY


def test_plan_counts_what_other_runs_already_spent() -> None:
    ledger = [T0 - 3600.0] * 4000
    result = plan(ledger, T0, BudgetPolicy(), 2000)
    assert result.available_now == 1000
    assert result.eta == T0 - 3600.0 + DAY
    assert result.days == 1 and result.per_day == (2000,)


def test_plan_by_utc_day_restarts_at_midnight() -> None:
    evening = MIDNIGHT - 6 * 3600.0
    result = plan([evening - 60.0] * 4000, evening, BudgetPolicy(window=WindowKind.UTC_DAY), 7000)
    assert result.per_day == (1000, 5000, 1000)
    assert result.eta == MIDNIGHT + DAY and result.days == 3


def test_plan_handles_a_large_job_quickly() -> None:
    ledger = [T0 - DAY + i * 17.0 for i in range(5000)]  # the last day fully used, spread out
    result = plan(ledger, T0, BudgetPolicy(), 60_000)
    assert result.available_now == 1  # the oldest expired exactly now
    assert result.per_day == (5000,) * 12
    assert result.eta == T0 + 11 * DAY + 4999 * 17.0


def greedy_reference(ledger: list[float], now: float, policy: BudgetPolicy, n: int) -> float:
    """Take one unit at a time, jumping to the next free moment: the obvious (slow) plan."""
    budget = Budget(policy, ledger)
    t = now
    for _ in range(n):
        t = budget.next_free_at(t)
        assert budget.try_take(t).granted
    return t


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(-DAY, 2 * 3600.0), max_size=12),
    st.integers(1, 5),
    st.sampled_from(WindowKind),
    st.integers(0, 25),
)
def test_plan_matches_taking_one_unit_at_a_time(
    offsets: list[float], limit: int, window: WindowKind, requests: int
) -> None:
    policy = BudgetPolicy(limit=limit, window=window)
    ledger = [T0 + off for off in offsets]
    result = plan(ledger, T0, policy, requests)
    assert sum(result.per_day) == requests
    assert len(result.per_day) == result.days
    if requests:
        assert result.eta == greedy_reference(ledger, T0, policy, requests)
        assert result.available_now == min(requests, available(ledger, T0, policy))
