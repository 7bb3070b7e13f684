"""extractor.core.backoff: jittered backoff, Retry-After, retry decisions, quota vs burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.core.backoff import (
    Action,
    Failure,
    Outcome,
    Reason,
    RetryDecision,
    RetryPolicy,
    Throttle,
    classify_429,
    compute_backoff,
    decide,
    error_for,
    is_retryable_status,
    parse_retry_after,
)
from extractor.errors import ApiError, AuthError, BudgetExhausted, TransientError

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy()

# -- compute_backoff -------------------------------------------------------------------


def test_backoff_doubles_until_the_cap() -> None:
    ceilings = [compute_backoff(a, base=1.0, cap=60.0, rng_value=0.999999) for a in range(1, 9)]
    assert [round(c) for c in ceilings] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_full_jitter_reaches_down_to_zero() -> None:
    assert compute_backoff(5, base=1.0, cap=60.0, rng_value=0.0) == 0.0
    assert compute_backoff(5, base=1.0, cap=60.0, rng_value=0.5) == 8.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert compute_backoff(10_000, base=1.0, cap=60.0, rng_value=0.5) == 30.0


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "rng"),
    [(0, 1.0, 1.0, 0.5), (1, -1.0, 1.0, 0.5), (1, 1.0, -1.0, 0.5), (1, 1.0, 1.0, 1.0)],
)
def test_backoff_arguments_are_checked(attempt: int, base: float, cap: float, rng: float) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        compute_backoff(attempt, base=base, cap=cap, rng_value=rng)


@given(
    st.integers(1, 200),
    st.floats(0, 10),
    st.floats(0, 600),
    st.floats(0, 1, exclude_max=True),
)
def test_backoff_stays_within_zero_and_the_capped_ceiling(
    attempt: int, base: float, cap: float, rng: float
) -> None:
    delay = compute_backoff(attempt, base=base, cap=cap, rng_value=rng)
    assert 0.0 <= delay <= cap
    assert delay <= base * 2.0 ** min(attempt - 1, 1000)


# -- Retry-After -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("Mon, 05 Jan 2026 12:00:30 GMT", 30.0),
        ("Monday, 05-Jan-26 12:01:00 GMT", 60.0),
        ("Mon Jan  5 12:00:10 2026", 10.0),
        ("Mon, 05 Jan 2026 11:00:00 GMT", 0.0),  # in the past: go now
        ("Mon, 05 Jan 2026 14:00:10 +0200", 10.0),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("value", ["", "soon", "-5", "1e3", "١٢", "Mon, 99 Foo 2026"])
def test_unparsable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_retry_after("5", now=datetime(2026, 1, 5))


# -- decide ----------------------------------------------------------------------------


def retry(outcome: Outcome, attempt: int = 1, rng: float = 0.5, **kw: bool) -> RetryDecision:
    return decide(POLICY, attempt, outcome, rng_value=rng, now=NOW, **kw)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408, 599])
def test_transient_statuses_are_retried_with_backoff(status: int) -> None:
    decision = retry(Outcome(status), attempt=3)
    assert decision == RetryDecision(Action.RETRY, 2.0)


@pytest.mark.parametrize("failure", list(Failure))
def test_failures_without_a_status_are_retried(failure: Failure) -> None:
    assert retry(Outcome(failure=failure)).action is Action.RETRY
    # a 200 whose body was cut off is a truncated body, not a success
    assert retry(Outcome(200, failure=failure)).action is Action.RETRY


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, Reason.CLIENT_ERROR),
        (403, Reason.CLIENT_ERROR),
        (404, Reason.CLIENT_ERROR),
        (501, Reason.UNEXPECTED_STATUS),
        (302, Reason.UNEXPECTED_STATUS),
    ],
)
def test_other_statuses_give_up_at_once(status: int, reason: Reason) -> None:
    assert retry(Outcome(status)) == RetryDecision(Action.GIVE_UP, reason=reason)
    assert not is_retryable_status(status)


def test_a_401_reauthenticates_once_then_gives_up() -> None:
    assert retry(Outcome(401)).action is Action.REAUTH
    assert retry(Outcome(401), reauthed=True) == RetryDecision(
        Action.GIVE_UP, reason=Reason.AUTH_REFUSED
    )


def test_a_quota_429_stops_instead_of_retrying() -> None:
    outcome = Outcome(429, throttle=Throttle.QUOTA_EXHAUSTED)
    assert retry(outcome).reason is Reason.QUOTA_EXHAUSTED
    assert retry(Outcome(429, throttle=Throttle.BURST)).action is Action.RETRY


def test_attempts_run_out() -> None:
    assert retry(Outcome(503), attempt=POLICY.max_attempts - 1).action is Action.RETRY
    assert retry(Outcome(503), attempt=POLICY.max_attempts).reason is Reason.ATTEMPTS_EXHAUSTED


def test_retry_after_zero_never_becomes_a_hot_loop() -> None:
    delays = [retry(Outcome(429, retry_after="0"), attempt=a, rng=0.0).delay for a in range(1, 6)]
    assert all(d >= POLICY.min_delay for d in delays)


def test_retry_after_is_a_floor_over_the_backoff() -> None:
    assert retry(Outcome(503, retry_after="30")).delay == 30.0
    assert retry(Outcome(503, retry_after="1"), attempt=5, rng=0.5).delay == 8.0
    date = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry(Outcome(429, retry_after=date)).delay == 90.0
    assert retry(Outcome(503, retry_after="whenever")).delay == 0.5


def test_a_very_long_retry_after_gives_up() -> None:
    long = str(int(POLICY.max_retry_after) + 1)
    assert retry(Outcome(503, retry_after=long)) == RetryDecision(
        Action.GIVE_UP, POLICY.max_retry_after + 1, Reason.RETRY_AFTER_TOO_LONG
    )
    # on a 429 the server is telling us the day is spent
    assert retry(Outcome(429, retry_after=long)).reason is Reason.QUOTA_EXHAUSTED


def test_success_is_not_a_decision() -> None:
    with pytest.raises(ValueError, match="success"):
        retry(Outcome(200))
    with pytest.raises(ValueError, match="status or a failure"):
        Outcome()


def test_policies_are_checked() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="delays"):
        RetryPolicy(min_delay=-1)


outcomes = st.one_of(
    st.builds(
        Outcome,
        st.sampled_from([401, 404, 408, 429, 500, 501, 503]),
        st.none(),
        st.one_of(st.none(), st.sampled_from(["0", "3", "60", "5000", "junk"])),
        st.one_of(st.none(), st.sampled_from(Throttle)),
    ),
    st.builds(Outcome, failure=st.sampled_from(Failure)),
)


@settings(max_examples=300)
@given(
    outcomes, st.integers(1, 12), st.floats(0, 1, exclude_max=True), st.booleans(), st.booleans()
)
def test_every_decision_is_bounded(
    outcome: Outcome, attempt: int, rng: float, reauthed: bool, generous: bool
) -> None:
    policy = RetryPolicy(max_attempts=10 if generous else 3)
    decision = decide(policy, attempt, outcome, rng_value=rng, now=NOW, reauthed=reauthed)
    if decision.action is Action.RETRY:
        assert attempt < policy.max_attempts
        assert policy.min_delay <= decision.delay <= max(policy.cap, policy.max_retry_after)
    elif decision.action is Action.REAUTH:
        assert outcome.status == 401 and not reauthed
    else:
        assert decision.reason is not None


# -- quota vs burst --------------------------------------------------------------------


def classify(**kw: int | float | None) -> Throttle:
    base: dict[str, int | float | None] = {
        "used_in_window": 100,
        "limit": 5000,
        "in_flight_others": 0,
        "idle_429s": 1,
    }
    return classify_429(**{**base, **kw})  # type: ignore[arg-type]


def test_a_429_is_a_burst_by_default() -> None:
    assert classify() is Throttle.BURST


def test_a_ledger_at_the_limit_means_quota() -> None:
    assert classify(used_in_window=5000) is Throttle.QUOTA_EXHAUSTED
    assert classify(used_in_window=5000, in_flight_others=2) is Throttle.QUOTA_EXHAUSTED


def test_repeated_429s_with_nothing_else_in_flight_mean_quota() -> None:
    assert classify(idle_429s=2) is Throttle.BURST
    assert classify(idle_429s=3) is Throttle.QUOTA_EXHAUSTED
    assert classify(idle_429s=5, idle_threshold=6) is Throttle.BURST


def test_a_429_while_we_hold_the_other_slots_is_a_burst() -> None:
    assert classify(idle_429s=9, in_flight_others=2) is Throttle.BURST


def test_a_long_wall_of_429s_means_quota() -> None:
    assert classify(seconds_since_success=899.0) is Throttle.BURST
    assert classify(seconds_since_success=900.0) is Throttle.QUOTA_EXHAUSTED


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "outcome", "kind"),
    [
        (
            RetryDecision(Action.GIVE_UP, reason=Reason.QUOTA_EXHAUSTED),
            Outcome(429),
            BudgetExhausted,
        ),
        (RetryDecision(Action.GIVE_UP, reason=Reason.AUTH_REFUSED), Outcome(401), AuthError),
        (RetryDecision(Action.GIVE_UP, reason=Reason.CLIENT_ERROR), Outcome(404), ApiError),
        (RetryDecision(Action.GIVE_UP, reason=Reason.UNEXPECTED_STATUS), Outcome(501), ApiError),
        (
            RetryDecision(Action.GIVE_UP, reason=Reason.ATTEMPTS_EXHAUSTED),
            Outcome(failure=Failure.TIMEOUT),
            TransientError,
        ),
        (
            RetryDecision(Action.GIVE_UP, 3600.0, Reason.RETRY_AFTER_TOO_LONG),
            Outcome(503),
            TransientError,
        ),
    ],
)
def test_give_up_maps_onto_the_error_tree(
    decision: RetryDecision, outcome: Outcome, kind: type[Exception]
) -> None:
    error = error_for(decision, outcome, "GET /api/v2/students")
    assert type(error) is kind
    assert "GET /api/v2/students" in str(error)
    if isinstance(error, ApiError):
        assert error.status == outcome.status


def test_only_give_up_maps_to_an_error() -> None:
    with pytest.raises(ValueError, match="give-up"):
        error_for(RetryDecision(Action.RETRY, 1.0), Outcome(503), "x")
