"""The request budget as the runner sees it: every request takes a unit from the
persisted ledger before it is sent, or the run stops (or waits) when none is left.

The arithmetic is :mod:`extractor.core.budget`'s; the store makes each charge one SQLite
transaction, so two processes of the same site can never both take the last unit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from extractor.clock import Clock
from extractor.core.budget import BudgetPolicy, used
from extractor.errors import BudgetExhausted, redact
from extractor.state.store import StateStore


def format_when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class LedgerBudget:
    """A :class:`~extractor.http.client.RequestBudget` over the state database."""

    def __init__(
        self, store: StateStore, policy: BudgetPolicy, clock: Clock, *, wait: bool = False
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.wait = wait
        self.waited = 0.0

    async def charge(self, what: str) -> None:
        while True:
            now = self.clock.now().timestamp()
            grant = self.store.charge(now, self.policy, redact(what))
            if grant.granted:
                return
            if not self.wait:
                raise BudgetExhausted(
                    f"the request budget is spent ({self.policy.capacity} requests per "
                    f"{'24 hours' if self.policy.window.value == 'rolling' else 'UTC day'}"
                    f"{f', {self.policy.reserve} kept in reserve' if self.policy.reserve else ''}); "
                    f"the budget next allows work at {format_when(grant.at)}",
                    resume_at=grant.at,
                )
            self.waited += grant.wait
            await self.clock.sleep(grant.wait)

    def used(self) -> int:
        now = self.clock.now().timestamp()
        return used(self.store.ledger_times(now, self.policy), now, self.policy)

    def observe(self, what: str, status: int | None) -> None:
        """Outcomes are not needed by the ledger: a request counts whatever it returned."""
