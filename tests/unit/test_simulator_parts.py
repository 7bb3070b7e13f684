"""The simulator's parts without sockets: limits, tokens, fault draws, config, ledger, TLS."""

from __future__ import annotations

import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from extractor.clock import ManualClock
from extractor.errors import ConfigError
from extractor.simulator.app import Simulator
from extractor.simulator.config import FAULT_KINDS, SimConfig, spread_fault_rate
from extractor.simulator.faults import FaultPlan
from extractor.simulator.ledger import Ledger
from extractor.simulator.limits import Limiter, Verdict
from extractor.simulator.tls import make_test_ca
from extractor.simulator.tokens import TokenStore, key_matches

START = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)


def test_fourth_request_in_flight_is_a_burst_refusal() -> None:
    limiter = Limiter(ManualClock(START), max_concurrency=3, daily_limit=100)
    assert [limiter.enter() for _ in range(3)] == [None, None, None]
    assert limiter.enter() is Verdict.BURST
    limiter.leave()  # the refused one
    limiter.leave()  # one finished
    assert limiter.enter() is None
    assert limiter.in_flight == 3


def test_every_arrival_counts_and_the_quota_resets_at_utc_midnight() -> None:
    clock = ManualClock(START)
    limiter = Limiter(clock, max_concurrency=3, daily_limit=2)
    verdicts = []
    for _ in range(4):
        verdicts.append(limiter.enter())
        limiter.leave()
    assert verdicts == [None, None, Verdict.QUOTA, Verdict.QUOTA]
    assert limiter.used_today == 4  # refused arrivals are charged too
    clock.advance(59 * 60 + 59)  # 23:59:59, same day
    assert limiter.enter() is Verdict.QUOTA
    limiter.leave()
    clock.advance(1)  # 00:00:00 the next UTC day
    assert limiter.enter() is None
    limiter.leave()
    assert limiter.used_today == 1
    assert limiter.day == START.date() + timedelta(days=1)


def test_spend_charges_other_integrations_to_the_shared_quota() -> None:
    limiter = Limiter(ManualClock(START), max_concurrency=3, daily_limit=10)
    limiter.spend(9)
    assert limiter.remaining_today == 1
    assert limiter.enter() is None
    limiter.leave()
    assert limiter.enter() is Verdict.QUOTA


def test_tokens_are_opaque_base64_and_expire_after_their_lifetime() -> None:
    clock = ManualClock(START)
    store = TokenStore(clock, lifetime=timedelta(hours=24), rng=random.Random(7))
    token = store.issue()
    assert 140 <= len(token) <= 160
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    assert token.count(".") == 0  # not a JWT
    assert store.is_valid(token)
    clock.advance(24 * 3600 - 1)
    assert store.is_valid(token)
    clock.advance(1)
    assert not store.is_valid(token)
    assert not store.is_valid("made-up")


def test_tokens_are_distinct_and_expire_on_demand() -> None:
    store = TokenStore(ManualClock(START), lifetime=timedelta(hours=1))
    a, b = store.issue(), store.issue()
    assert a != b
    store.expire(a)
    assert not store.is_valid(a)
    assert store.is_valid(b)
    store.expire()
    assert not store.is_valid(b)


def test_key_comparison() -> None:
    assert key_matches("abc", "abc")
    assert not key_matches("abd", "abc")
    assert not key_matches(None, "abc")
    assert not key_matches("", "abc")


def test_fault_draws_follow_the_configured_rates() -> None:
    config = SimConfig(p_500=0.1, p_reset=0.2, fault_seed=3)
    plan = FaultPlan(config)
    draws = Counter(plan.draw("/api/v2/students") for _ in range(20_000))
    assert set(draws) == {None, "500", "reset"}
    assert draws["500"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert draws["reset"] / 20_000 == pytest.approx(0.2, abs=0.01)


def test_fault_draws_are_reproducible_from_the_seed() -> None:
    config = SimConfig(p_429=0.3, p_502=0.3, fault_seed=11)
    plan_a, plan_b = FaultPlan(config), FaultPlan(config)
    draws = [plan_a.draw("/x") for _ in range(200)]
    assert draws == [plan_b.draw("/x") for _ in range(200)]
    assert set(draws) == {None, "429", "502"}


def test_scheduled_faults_come_first_and_respect_fault_routes() -> None:
    plan = FaultPlan(SimConfig(fault_routes=frozenset({"/api/v2/students"})))
    plan.schedule("truncate", None, "slow")
    assert plan.draw("/api/client/generateAuthenticationToken") is None  # not a fault route
    assert [plan.draw("/api/v2/students") for _ in range(4)] == ["truncate", None, "slow", None]
    with pytest.raises(ValueError, match="unknown fault kind"):
        plan.schedule("explode")


def test_no_faults_by_default() -> None:
    plan = FaultPlan(SimConfig())
    assert all(plan.draw("/api/v2/students") is None for _ in range(1000))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p_500": 1.5},
        {"p_429": 0.6, "p_500": 0.6},
        {"latency": -1.0},
        {"max_concurrency": 0},
        {"daily_limit": -1},
        {"api_key": ""},
        {"rows": {"students": -1}},
        {"retry_after": -1},
        {"scale": -0.5},
    ],
)
def test_bad_config_is_a_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**kwargs)  # type: ignore[arg-type]


def test_config_hides_the_key_and_generates_one() -> None:
    a, b = SimConfig(), SimConfig()
    assert a.api_key != b.api_key
    assert len(a.api_key) >= 32
    assert a.api_key not in repr(a)


def test_spread_fault_rate_leaves_slow_out() -> None:
    spread = spread_fault_rate(0.06)
    assert set(spread) == {f"p_{k}" for k in FAULT_KINDS if k != "slow"}
    assert sum(spread.values()) == pytest.approx(0.06)
    with pytest.raises(ConfigError):
        spread_fault_rate(2.0)


def test_ledger_counts_and_json() -> None:
    ledger = Ledger()
    ledger.arrival("2026-01-05", 1)
    ledger.arrival("2026-01-05", 3)
    ledger.arrival("2026-01-06", 2)
    ledger.requests[("/api/v2/students", 200)] += 2
    ledger.requests[("/api/v2/students", 429)] += 1
    assert ledger.count("/api/v2/students") == 3
    assert ledger.count(status=429) == 1
    assert ledger.count() == 3
    snapshot = ledger.to_json()
    assert snapshot["total"] == 3
    assert snapshot["max_in_flight"] == 3
    assert snapshot["per_day"] == {"2026-01-05": 2, "2026-01-06": 1}
    assert snapshot["requests"] == {"/api/v2/students": {"200": 2, "429": 1}}


def test_tls_without_trustme_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # makes `import trustme` fail
    with pytest.raises(ConfigError, match=r"twelvetwenty-extractor\[simulator\]"):
        make_test_ca(tmp_path)


def test_unknown_entity_in_rows_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unicorns"):
        Simulator(SimConfig(rows={"unicorns": 3}), clock=ManualClock(START))
