"""The simulator's knobs, in one frozen value.

Defaults are what tests want (no latency, no faults, the article's limits); the
``simulate`` command overrides latency with realistic values. Every knob is here so a test,
a benchmark and the CLI describe a simulated school the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from extractor.errors import ConfigError

# The kinds of injected fault, in the order probabilities are laid out on [0, 1).
FAULT_KINDS: tuple[str, ...] = (
    "429", "500", "502", "503", "reset", "truncate", "garble", "slow",
)  # fmt: skip


def generate_api_key() -> str:
    """A fresh random API key (32 hex digits, like the GUID-ish keys schools receive)."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that makes one simulated school behave the way it does.

    Data:
      ``seed``: drives the generated data (same seed, same school).
      ``scale``: multiplies every entity's default row count (1.0 = a mid-sized school).
      ``rows``: exact row counts per entity name, overriding ``scale`` for those entities.

    Authentication:
      ``api_key``: the school's key; a random one when not given. Kept out of ``repr``.
      ``token_lifetime``: seconds a token stays valid after issue, in the simulator clock.
      ``token_format``: ``"plain"`` serves the raw token as text/plain (what working clients
      see); ``"json"`` serves it JSON-quoted, which clients must also tolerate.

    Timing (real ``asyncio.sleep``, so benchmarks feel it; tests keep them 0):
      ``latency``: fixed seconds added to every admitted request.
      ``latency_jitter``: up to this many more seconds, uniformly drawn.

    Limits (the article's, per school; one app is one school):
      ``max_concurrency``: a request arriving while this many are in flight gets 429.
      ``daily_limit``: requests per UTC day of the simulator clock; past it, 429 until the
      day turns. Every request counts, rejected ones included.

    Faults (each request draws at most one, on the routes in ``fault_routes``):
      ``p_429``, ``p_500``, ``p_502``, ``p_503``: answer with that status instead.
      ``p_reset``: close the connection without a response.
      ``p_truncate``: announce the full Content-Length, send part of the body, close.
      ``p_garble``: a 200 with the full, announced length whose second half is not JSON
      (no transport error: only parsing the body can tell).
      ``p_slow``: send the real response, dribbled over ``slow_seconds``.
      ``fault_seed``: seeds the fault and jitter draws (reproducible runs).
      ``fault_routes``: path templates faults apply to (e.g. ``{"/api/v2/students"}``);
      ``None`` means every counted route, the token route included.

    ``retry_after``: when set, 429s carry ``Retry-After`` with this many whole seconds. The real
    API sends none; this exists for client tests.
    """

    seed: int = 1
    scale: float = 1.0
    rows: Mapping[str, int] | None = None
    api_key: str = field(default_factory=generate_api_key, repr=False)
    token_lifetime: float = 24 * 3600.0
    token_format: Literal["plain", "json"] = "plain"
    latency: float = 0.0
    latency_jitter: float = 0.0
    max_concurrency: int = 3
    daily_limit: int = 5000
    p_429: float = 0.0
    p_500: float = 0.0
    p_502: float = 0.0
    p_503: float = 0.0
    p_reset: float = 0.0
    p_truncate: float = 0.0
    p_garble: float = 0.0
    p_slow: float = 0.0
    slow_seconds: float = 2.0
    fault_seed: int = 0
    fault_routes: frozenset[str] | None = None
    retry_after: int | None = None

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigError("the simulator's api_key must not be empty")
        if self.scale < 0:
            raise ConfigError(f"scale must be >= 0, not {self.scale}")
        for name, count in (self.rows or {}).items():
            if count < 0:
                raise ConfigError(f"rows[{name!r}] must be >= 0, not {count}")
        for name in ("token_lifetime", "latency", "latency_jitter", "slow_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.max_concurrency < 1:
            raise ConfigError("max_concurrency must be >= 1")
        if self.daily_limit < 0:
            raise ConfigError("daily_limit must be >= 0")
        if self.retry_after is not None and self.retry_after < 0:
            raise ConfigError("retry_after must be >= 0")
        if self.token_format not in ("plain", "json"):
            raise ConfigError("token_format must be 'plain' or 'json'")
        probabilities = self.fault_probabilities()
        for kind, p in probabilities.items():
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"p_{kind} must be within [0, 1], not {p}")
        if sum(probabilities.values()) > 1.0 + 1e-9:
            raise ConfigError("fault probabilities add up to more than 1")

    def fault_probabilities(self) -> dict[str, float]:
        """Fault kind -> probability, in :data:`FAULT_KINDS` order."""
        return {kind: float(getattr(self, f"p_{kind}")) for kind in FAULT_KINDS}


def spread_fault_rate(rate: float) -> dict[str, float]:
    """Split a total fault ``rate`` evenly over every kind but ``slow``.

    ``slow`` is left out because it costs wall time rather than a retry; ask for it by name.
    Returns ``{"p_429": ..., ...}`` ready for ``SimConfig(**...)``.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"fault rate must be within [0, 1], not {rate}")
    kinds = [k for k in FAULT_KINDS if k != "slow"]
    return {f"p_{k}": rate / len(kinds) for k in kinds}
