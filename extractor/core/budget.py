"""Daily request budget arithmetic over the persisted ledger.

The ledger is the list of POSIX timestamps (seconds, UTC) at which requests were *charged*,
one entry per request, retries, 429s and token fetches included. It is charged before a
request is sent, so it may over-count what the server saw, never under-count.

Two ways to count a day (``--budget-window``):

- ``rolling`` (default): a request counts for 24 hours after it was charged. Whatever the
  server really counts (a rolling window or calendar days in any zone), a client that never
  has more than N requests in *any* 24 hours never exceeds N in any calendar day either.
- ``utc-day``: requests count until the next UTC midnight. Faster to recover, but only
  right if the server resets at UTC midnight.

Decisions:

- ``capacity = limit - reserve``: the reserve is headroom for the school's other
  integrations, which share the server's limit but not our ledger.
- Timestamps later than ``now`` (the clock went back) are counted as used. That keeps the
  invariant "no window holds more than capacity" true across clock jumps.
- A request charged at ``t`` is freed at exactly ``t + 86400`` (rolling); comparisons
  always compute ``t + DAY`` rather than ``now - DAY`` so that :func:`when_available`'s
  answer is exact in floating point.
- Pure functions only: a store calls :func:`try_take` inside one write transaction
  (read ledger, decide, insert) so two processes can never both take the last unit.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DAY = 86400.0


class WindowKind(enum.Enum):
    ROLLING = "rolling"
    UTC_DAY = "utc-day"


@dataclass(frozen=True)
class BudgetPolicy:
    """How many requests a window may hold for us."""

    limit: int = 5000
    reserve: int = 0
    window: WindowKind = WindowKind.ROLLING

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if not 0 <= self.reserve < self.limit:
            raise ValueError(f"reserve must be in 0..limit-1, got {self.reserve}")

    @property
    def capacity(self) -> int:
        """Requests we may charge per window: ``limit - reserve``."""
        return self.limit - self.reserve


def _day(ts: float) -> float:
    return ts // DAY


def _sorted(ledger: Iterable[float]) -> Sequence[float]:
    seq = ledger if isinstance(ledger, Sequence) else list(ledger)
    if all(seq[i] <= seq[i + 1] for i in range(len(seq) - 1)):
        return seq
    return sorted(seq)


def _first_counted(ledger: Sequence[float], now: float, policy: BudgetPolicy) -> int:
    """Index of the first (sorted) entry still counted at ``now``: every entry from there on
    counts, including any in the future."""
    if policy.window is WindowKind.ROLLING:
        return bisect.bisect_right(ledger, now, key=lambda ts: ts + DAY)
    return bisect.bisect_left(ledger, _day(now), key=_day)


def used(ledger: Iterable[float], now: float, policy: BudgetPolicy) -> int:
    """Requests counted against the window at ``now``."""
    seq = _sorted(ledger)
    return len(seq) - _first_counted(seq, now, policy)


def available(ledger: Iterable[float], now: float, policy: BudgetPolicy) -> int:
    """Units that may be taken at ``now`` (never negative)."""
    return max(0, policy.capacity - used(ledger, now, policy))


def when_available(ledger: Iterable[float], now: float, policy: BudgetPolicy, n: int = 1) -> float:
    """The earliest time ``>= now`` at which ``n`` units are free, if nobody takes any
    meanwhile. ``ValueError`` when ``n`` exceeds the capacity (it never could be)."""
    if not 1 <= n <= policy.capacity:
        raise ValueError(f"n must be in 1..{policy.capacity}, got {n}")
    seq = _sorted(ledger)
    keep = policy.capacity - n  # entries that may still count when n are taken
    if len(seq) - _first_counted(seq, now, policy) <= keep:
        return now
    blocker = seq[len(seq) - keep - 1]  # the newest entry that must stop counting
    if policy.window is WindowKind.ROLLING:
        return max(now, blocker + DAY)
    return max(now, (_day(blocker) + 1) * DAY)


def next_free_at(ledger: Iterable[float], now: float, policy: BudgetPolicy) -> float:
    """When the next single unit frees (``now`` if one is free already)."""
    return when_available(ledger, now, policy, 1)


def prune_before(now: float, policy: BudgetPolicy) -> float:
    """Entries older than this can be deleted from the store: they no longer count, with
    one extra day of margin in case the clock is later set back."""
    if policy.window is WindowKind.ROLLING:
        return now - 2 * DAY
    return (_day(now) - 1) * DAY


@dataclass(frozen=True)
class Grant:
    """The answer of :func:`try_take`: granted now, or the time to wait until."""

    granted: bool
    at: float
    """``now`` when granted, else when the units will be free."""
    wait: float
    """Seconds from ``now`` to ``at`` (0 when granted)."""


def try_take(ledger: Iterable[float], now: float, policy: BudgetPolicy, n: int = 1) -> Grant:
    """Decide whether ``n`` requests may be charged at ``now``.

    Pure: when granted, the caller appends ``n`` copies of ``now`` to the ledger (in the
    same transaction it read it in). Sending only what this grants keeps every rolling
    24-hour window (or UTC day) at or under ``policy.capacity``.
    """
    at = when_available(ledger, now, policy, n)
    if at <= now:
        return Grant(True, now, 0.0)
    return Grant(False, at, at - now)


class Budget:
    """An in-memory ledger with the functions above as methods (tests, the simulator, plan
    previews). The durable ledger lives in the SQLite store."""

    def __init__(self, policy: BudgetPolicy, ledger: Iterable[float] = ()) -> None:
        self.policy = policy
        self.ledger: list[float] = sorted(ledger)

    def used(self, now: float) -> int:
        return used(self.ledger, now, self.policy)

    def available(self, now: float) -> int:
        return available(self.ledger, now, self.policy)

    def next_free_at(self, now: float) -> float:
        return next_free_at(self.ledger, now, self.policy)

    def when_available(self, now: float, n: int = 1) -> float:
        return when_available(self.ledger, now, self.policy, n)

    def try_take(self, now: float, n: int = 1) -> Grant:
        """:func:`try_take`, appending to the ledger when granted."""
        grant = try_take(self.ledger, now, self.policy, n)
        if grant.granted:
            for _ in range(n):
                bisect.insort(self.ledger, now)
        return grant

    def prune(self, now: float) -> None:
        """Forget entries :func:`prune_before` says can no longer matter."""
        del self.ledger[: bisect.bisect_left(self.ledger, prune_before(now, self.policy))]


@dataclass(frozen=True)
class Plan:
    """When a job of ``requests`` requests can be sent, taking every unit as it frees."""

    requests: int
    available_now: int
    days: int
    """24-hour periods from now (rolling) or UTC days from today (utc-day) with sends."""
    eta: float
    """When the last unit can be taken (sending and writing it takes a little longer)."""
    per_day: tuple[int, ...]
    """Units taken in each of those periods/days, first = the one containing ``now``."""


def plan(ledger: Iterable[float], now: float, policy: BudgetPolicy, requests: int) -> Plan:
    """A multi-day schedule for ``requests`` requests under ``policy``.

    Greedy: every unit is taken the moment it frees, and the reserve is assumed to cover
    other integrations. The result is the best case; anything else only delays it.
    """
    if requests < 0:
        raise ValueError(f"requests must be >= 0, got {requests}")
    seq = _sorted(ledger)
    batches = (
        _plan_rolling(seq, now, policy.capacity, requests)
        if policy.window is WindowKind.ROLLING
        else _plan_utc_day(seq, now, policy.capacity, requests)
    )
    eta = batches[-1][0] if batches else now
    first = _day(now)
    per_day: dict[int, int] = {}
    for at, count in batches:
        index = (
            int((at - now) // DAY) if policy.window is WindowKind.ROLLING else int(_day(at) - first)
        )
        per_day[index] = per_day.get(index, 0) + count
    days = max(per_day) + 1 if per_day else 0
    now_units = batches[0][1] if batches and batches[0][0] == now else 0
    return Plan(requests, now_units, days, eta, tuple(per_day.get(i, 0) for i in range(days)))


def _plan_rolling(
    seq: Sequence[float], now: float, capacity: int, requests: int
) -> list[tuple[float, int]]:
    entries: list[tuple[float, int]] = [(ts, 1) for ts in seq]
    head = bisect.bisect_right(entries, now, key=lambda e: e[0] + DAY)
    in_use = sum(count for _, count in entries[head:])
    batches: list[tuple[float, int]] = []
    t, left = now, requests
    while left > 0:
        while head < len(entries) and entries[head][0] + DAY <= t:
            in_use -= entries[head][1]
            head += 1
        if head > 4096 and head * 2 > len(entries):
            del entries[:head]
            head = 0
        if in_use < capacity:
            take = min(capacity - in_use, left)
            bisect.insort(entries, (t, take), lo=head)
            in_use += take
            left -= take
            batches.append((t, take))
            if left == 0:
                break
        t = max(t, entries[head][0] + DAY)
    return batches


def _plan_utc_day(
    seq: Sequence[float], now: float, capacity: int, requests: int
) -> list[tuple[float, int]]:
    batches: list[tuple[float, int]] = []
    day, left = _day(now), requests
    while left > 0:
        counted = len(seq) - bisect.bisect_left(seq, day, key=_day)
        free = capacity - counted
        if free > 0:
            take = min(free, left)
            batches.append((now if day == _day(now) else day * DAY, take))
            left -= take
        day += 1
    return batches
