"""The article's limits: 3 requests in flight and 5,000 requests a day, per school.

Both are decided on arrival, never by queueing: a request that finds ``max_concurrency``
already in flight is refused at once, and so is every request past the day's quota until
the UTC calendar day of the simulator clock turns. Every arrival counts toward the day,
refused ones included, because that is what makes the real quota unforgiving.

The two refusals look identical to a client (same 429, no Retry-After); the :class:`Verdict`
says which it was so the ledger can tell tests.
"""

from __future__ import annotations

import enum
from datetime import UTC, date

from extractor.clock import Clock


class Verdict(enum.Enum):
    """Why an arrival was refused."""

    BURST = "burst"  # too many in flight
    QUOTA = "quota"  # the day's requests are spent


class Limiter:
    """Counts arrivals and in-flight requests for one school.

    Call :meth:`enter` on every arrival and :meth:`leave` when its response is ready
    (refused or not). ``daily_limit`` may be changed at any time, and :meth:`spend` charges
    requests made by "other integrations" of the same school, which share the quota.
    """

    def __init__(self, clock: Clock, *, max_concurrency: int, daily_limit: int) -> None:
        self._clock = clock
        self.max_concurrency = max_concurrency
        self.daily_limit = daily_limit
        self.in_flight = 0
        self._day = self._today()
        self._used = 0

    def _today(self) -> date:
        return self._clock.now().astimezone(UTC).date()

    def _roll(self) -> date:
        today = self._today()
        if today != self._day:
            self._day = today
            self._used = 0
        return today

    @property
    def day(self) -> date:
        """The current UTC day of the simulator clock."""
        return self._roll()

    @property
    def used_today(self) -> int:
        """Requests charged to the current UTC day (arrivals plus :meth:`spend`)."""
        self._roll()
        return self._used

    @property
    def remaining_today(self) -> int:
        """Requests still allowed today."""
        return max(0, self.daily_limit - self.used_today)

    def spend(self, requests: int) -> None:
        """Charge ``requests`` made elsewhere to today's quota (the quota is shared)."""
        if requests < 0:
            raise ValueError("requests must be >= 0")
        self._roll()
        self._used += requests

    def enter(self) -> Verdict | None:
        """Count an arrival; return why it is refused, or None if it may proceed.

        The arrival is in flight either way: the caller must :meth:`leave` exactly once.
        """
        self._roll()
        self._used += 1
        busy = self.in_flight
        self.in_flight = busy + 1
        if self._used > self.daily_limit:
            return Verdict.QUOTA
        if busy >= self.max_concurrency:
            return Verdict.BURST
        return None

    def leave(self) -> None:
        """A request's response is ready: it no longer occupies a slot."""
        self.in_flight -= 1
