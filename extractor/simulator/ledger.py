"""What the simulator saw: the evidence tests and benchmarks judge a client by.

"The extractor never wastes a request and never exceeds a limit" is only checkable from
the server's side, so the simulator keeps a ledger of every counted request: by route
template and status, per UTC day, the most ever in flight, refusals by reason, injected
faults, pages and details served, tokens issued. It is also served as JSON at
``GET /_sim/ledger`` (simulator-only: no auth, not counted, not limited).

Status 0 stands for "no response" (a reset connection, or a handler cancelled because the
client went away).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ledger:
    """Counters of everything the simulated API did. Mutated only by the simulator."""

    total: int = 0
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    per_day: Counter[str] = field(default_factory=Counter)
    max_in_flight: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    pages: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)
    tokens_issued: int = 0

    def arrival(self, day: str, in_flight: int) -> None:
        """Record one counted request arriving while ``in_flight`` (itself included) run."""
        self.total += 1
        self.per_day[day] += 1
        if in_flight > self.max_in_flight:
            self.max_in_flight = in_flight

    def count(self, template: str | None = None, status: int | None = None) -> int:
        """Requests matching ``template`` and/or ``status`` (None matches any)."""
        return sum(
            n
            for (t, s), n in self.requests.items()
            if (template is None or t == template) and (status is None or s == status)
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready snapshot (``requests`` nested as template -> status -> count)."""
        nested: dict[str, dict[str, int]] = {}
        for (template, status), n in sorted(self.requests.items()):
            nested.setdefault(template, {})[str(status)] = n
        return {
            "total": self.total,
            "requests": nested,
            "per_day": dict(sorted(self.per_day.items())),
            "max_in_flight": self.max_in_flight,
            "refused": dict(self.refused),
            "faults": dict(self.faults),
            "pages": dict(self.pages),
            "details": dict(self.details),
            "tokens_issued": self.tokens_issued,
        }
