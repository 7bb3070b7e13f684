"""Retry decisions as pure functions.

Every retry spends a unit of a 5,000-a-day budget shared with the school's other
integrations, so the policy leans towards waiting longer rather than retrying sooner:

- Exponential backoff with *full* jitter (``uniform(0, min(cap, base * 2**(attempt-1)))``):
  concurrent clients that failed together spread out instead of retrying in lockstep.
- ``Retry-After`` (seconds or an HTTP-date) is a *floor*, never a ceiling: the delay is the
  largest of the header, the jittered backoff and ``min_delay``. So ``Retry-After: 0``
  repeated by a server cannot become a hot loop, and the attempt limit still applies.
- A ``Retry-After`` longer than ``max_retry_after`` gives up (the server is telling us to
  come back another time: for a 429 that is the daily quota).
- 401 re-authenticates once per request; a second 401 is an authentication failure.
- A 429 is classified first (:func:`classify_429`): a quota 429 stops the run cleanly, a
  burst 429 is retried.

Nothing here sleeps, reads the clock or draws random numbers: ``now`` and ``rng_value``
(uniform in [0, 1)) are passed in.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from extractor.errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    ExtractorError,
    TransientError,
)


def compute_backoff(attempt: int, *, base: float, cap: float, rng_value: float) -> float:
    """Delay before retrying after failed attempt number ``attempt`` (1-based):
    ``rng_value * min(cap, base * 2**(attempt - 1))``."""
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")
    if not 0.0 <= rng_value < 1.0:
        raise ValueError(f"rng_value must be in [0, 1), got {rng_value}")
    # 2.0**1024 raises OverflowError; 2.0**1000 times a base is at worst inf, which the
    # cap absorbs (and a zero base stays zero).
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 1000))
    return rng_value * ceiling


@dataclass(frozen=True)
class RetryPolicy:
    """Per-request retry limits (attempts include the first one)."""

    max_attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    min_delay: float = 0.5
    max_retry_after: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if min(self.base, self.cap, self.min_delay, self.max_retry_after) < 0:
            raise ValueError("delays must be >= 0")


class Failure(enum.Enum):
    """Failures that have no (usable) HTTP status."""

    CONNECTION = "connection"
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"
    """The body ended early or did not parse: the request is repeated."""


class Throttle(enum.Enum):
    BURST = "burst"
    """Too many requests in flight at the school: back off and retry."""
    QUOTA_EXHAUSTED = "quota"
    """The day's requests are spent: stop, persist, resume when the budget frees."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one attempt. Set ``status`` or ``failure`` (``failure`` wins: a 200
    with a cut body is ``TRUNCATED``); ``throttle`` is :func:`classify_429`'s verdict."""

    status: int | None = None
    failure: Failure | None = None
    retry_after: str | None = None
    throttle: Throttle | None = None

    def __post_init__(self) -> None:
        if self.status is None and self.failure is None:
            raise ValueError("an outcome needs a status or a failure")


class Action(enum.Enum):
    RETRY = "retry"
    REAUTH = "reauth"
    """Fetch a new token, then repeat the request at once (not counted as an attempt)."""
    GIVE_UP = "give_up"


class Reason(enum.Enum):
    """Why a request is given up; :func:`error_for` maps each to the error tree."""

    QUOTA_EXHAUSTED = "quota_exhausted"
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    AUTH_REFUSED = "auth_refused"
    CLIENT_ERROR = "client_error"
    UNEXPECTED_STATUS = "unexpected_status"


@dataclass(frozen=True)
class RetryDecision:
    action: Action
    delay: float = 0.0
    """Seconds to wait before retrying; for ``RETRY_AFTER_TOO_LONG``, what the server asked."""
    reason: Reason | None = None


def is_retryable_status(status: int) -> bool:
    """429, 408 and 5xx except 501 (Not Implemented will not change on retry)."""
    return status in (408, 429) or (500 <= status <= 599 and status != 501)


_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date (IMF,
    RFC 850 or asctime; zone-less dates are GMT). A date in the past gives 0. Anything
    unparsable gives None: the header is then ignored, not trusted."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def decide(
    policy: RetryPolicy,
    attempt: int,
    outcome: Outcome,
    *,
    rng_value: float,
    now: datetime,
    reauthed: bool = False,
) -> RetryDecision:
    """What to do after attempt number ``attempt`` (1-based) ended with ``outcome``.

    ``reauthed`` says whether this request already had its one re-authentication (pass
    True for the token request itself: a 401 there means the key is wrong).
    Raises ``ValueError`` for a successful outcome: there is nothing to decide.
    """
    status = outcome.status
    if outcome.failure is None:
        assert status is not None
        if 200 <= status <= 299:
            raise ValueError(f"status {status} is a success, not a failure")
        if status == 401:
            if reauthed:
                return RetryDecision(Action.GIVE_UP, reason=Reason.AUTH_REFUSED)
            return RetryDecision(Action.REAUTH)
        if status == 429 and outcome.throttle is Throttle.QUOTA_EXHAUSTED:
            return RetryDecision(Action.GIVE_UP, reason=Reason.QUOTA_EXHAUSTED)
        if not is_retryable_status(status):
            reason = Reason.CLIENT_ERROR if 400 <= status <= 499 else Reason.UNEXPECTED_STATUS
            return RetryDecision(Action.GIVE_UP, reason=reason)

    hinted = None
    if outcome.retry_after is not None and outcome.failure is None:
        hinted = parse_retry_after(outcome.retry_after, now=now)
    if hinted is not None and hinted > policy.max_retry_after:
        reason = Reason.QUOTA_EXHAUSTED if status == 429 else Reason.RETRY_AFTER_TOO_LONG
        return RetryDecision(Action.GIVE_UP, hinted, reason)
    if attempt >= policy.max_attempts:
        return RetryDecision(Action.GIVE_UP, reason=Reason.ATTEMPTS_EXHAUSTED)
    jittered = compute_backoff(attempt, base=policy.base, cap=policy.cap, rng_value=rng_value)
    return RetryDecision(Action.RETRY, max(jittered, policy.min_delay, hinted or 0.0))


def classify_429(
    *,
    used_in_window: int,
    limit: int,
    in_flight_others: int,
    idle_429s: int,
    seconds_since_success: float | None = None,
    idle_threshold: int = 3,
    quota_after: float = 900.0,
) -> Throttle:
    """Tell a quota 429 (the day is spent) from a burst 429 (too many in flight).

    The server says only "Too many requests", so the ledger's view decides:

    - ``used_in_window >= limit``: our own ledger alone has spent the server's daily limit
      (``limit`` is the server's, not ``limit - reserve``): QUOTA.
    - ``idle_429s >= idle_threshold``: that many 429s (this one included) since our last
      success arrived while *none* of our other requests was in flight. With nothing of
      ours competing, a burst needs other integrations holding all 3 slots across several
      backoffs; a day spent by other integrations explains it better: QUOTA.
    - ``seconds_since_success >= quota_after``: nothing but 429s for that long: QUOTA.
    - otherwise BURST. ``in_flight_others`` (our other requests in flight when it came)
      is how the caller decides whether this 429 is idle; with 2 others in flight a
      burst is the obvious reading whatever the counts.

    Misreading quota as burst costs a few retries (bounded by the attempt limit);
    misreading burst as quota stops a run early but resumably. Both are safe.
    """
    if used_in_window >= limit:
        return Throttle.QUOTA_EXHAUSTED
    if in_flight_others >= 2:
        return Throttle.BURST
    if idle_429s >= idle_threshold:
        return Throttle.QUOTA_EXHAUSTED
    if seconds_since_success is not None and seconds_since_success >= quota_after:
        return Throttle.QUOTA_EXHAUSTED
    return Throttle.BURST


def error_for(decision: RetryDecision, outcome: Outcome, what: str) -> ExtractorError:
    """The error to raise for a ``GIVE_UP`` decision. ``what`` names the endpoint or site
    and must already be redacted (see :func:`extractor.errors.redact`)."""
    if decision.action is not Action.GIVE_UP or decision.reason is None:
        raise ValueError("only a give-up decision maps to an error")
    detail = outcome.failure.value if outcome.failure else f"HTTP {outcome.status}"
    reason = decision.reason
    if reason is Reason.QUOTA_EXHAUSTED:
        return BudgetExhausted(f"{what}: the daily request quota is spent ({detail})")
    if reason is Reason.AUTH_REFUSED:
        return AuthError(f"{what}: the API key or token was refused ({detail})")
    if reason in (Reason.CLIENT_ERROR, Reason.UNEXPECTED_STATUS):
        assert outcome.status is not None
        return ApiError(f"{what}: refused with {detail}", status=outcome.status)
    if reason is Reason.RETRY_AFTER_TOO_LONG:
        return TransientError(
            f"{what}: server asked to wait {decision.delay:.0f}s ({detail})",
            retry_after=decision.delay,
        )
    return TransientError(f"{what}: still failing after retries ({detail})")
