"""The only place that speaks HTTP: one aiohttp session, one limiter, retries, the budget.

Each call goes: (token) -> charge the budget -> take a limiter slot -> send -> release the
slot -> decide. Backoff sleeps happen outside the slot. A 401 renews the token once; a
second 401 is an AuthError. aiohttp's errors are translated at this boundary into the
extractor's error tree with the key and token redacted.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import urlencode

import aiohttp

from extractor.clock import Clock
from extractor.config import Secret, Settings
from extractor.core.backoff import (
    Action,
    Failure,
    Outcome,
    Reason,
    RetryPolicy,
    Throttle,
    classify_429,
    decide,
    error_for,
)
from extractor.errors import ApiError, AuthError, TransientError, redact
from extractor.http.auth import TOKEN_PATH, TokenManager, TokenStore
from extractor.http.limiter import Limiter


class RequestBudget(Protocol):
    """Charged before every request is sent (raises BudgetExhausted when none is left)."""

    async def charge(self, what: str) -> None: ...

    def used(self) -> int:
        """Requests charged in the current window (for telling quota 429s from bursts)."""
        ...

    def observe(self, what: str, status: int | None) -> None:
        """Told the outcome of each request (status, or None for no response)."""
        ...


@dataclass
class CountingBudget:
    """The run's own tally of requests sent, in front of the budget that decides (if any:
    without one, every request is allowed)."""

    inner: RequestBudget | None = None
    sent: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    async def charge(self, what: str) -> None:
        if self.inner is not None:
            await self.inner.charge(what)
        self.sent += 1

    def used(self) -> int:
        return self.inner.used() if self.inner is not None else self.sent

    def observe(self, what: str, status: int | None) -> None:
        key = str(status) if status is not None else "error"
        self.by_status[key] = self.by_status.get(key, 0) + 1
        if self.inner is not None:
            self.inner.observe(what, status)


def default_ssl_context() -> ssl.SSLContext:
    """Verified TLS: the system store, plus $SSL_CERT_FILE / $SSL_CERT_DIR when set."""
    return ssl.create_default_context()


def new_session(base_url: str, concurrency: int) -> aiohttp.ClientSession:
    """The one session of a process: at most ``concurrency`` connections, verified TLS.

    The TLS context (loading the CA store takes ~20 ms) is only built for https origins;
    plain http is only ever allowed to a loopback simulator.
    """
    tls: ssl.SSLContext | bool = default_ssl_context() if base_url.startswith("https://") else False
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=tls)
    return aiohttp.ClientSession(connector=connector)


class ApiClient:
    """Authenticated GETs against one school's API under the shared limits."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        key: Secret,
        *,
        site: str,
        limiter: Limiter,
        budget: RequestBudget,
        clock: Clock,
        rng: random.Random | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 120.0,
        token_store: TokenStore | None = None,
        daily_limit: int = 5000,
    ) -> None:
        self._session = session
        # aiohttp silently re-sends an idempotent request once when the connection drops,
        # so one call could cost two requests nobody charged to the budget. Every attempt
        # must be ours to count: turn that off (no public switch exists; a test guards it).
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        self._base = base_url.rstrip("/")
        self._key = key
        self._site = site
        self._limiter = limiter
        self._budget = budget
        self._clock = clock
        self._rng = rng or random.Random()
        self._policy = policy or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.auth = TokenManager(key, self._fetch_token, clock, site=site, store=token_store)
        self.retries = 0
        self.last_failure = ""
        self._idle_429s = 0  # 429s since the last success with none of ours in flight
        self._daily_limit = daily_limit

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        limiter: Limiter,
        budget: RequestBudget,
        clock: Clock,
        rng: random.Random | None = None,
        token_store: TokenStore | None = None,
    ) -> ApiClient:
        """The client of a run or command: site, key, timeout, attempts and the daily
        limit (for telling quota 429s from bursts) come from ``settings``."""
        return cls(
            session,
            settings.base_url,
            settings.api_key,
            site=settings.site,
            limiter=limiter,
            budget=budget,
            clock=clock,
            rng=rng,
            policy=RetryPolicy(max_attempts=settings.max_attempts),
            timeout=settings.request_timeout,
            token_store=token_store,
            daily_limit=settings.max_requests_per_day,
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._key.reveal())

    async def _exchange(
        self,
        what: str,
        url: str,
        headers: Mapping[str, str] | None,
        keep: Callable[[bytes], None] | None = None,
    ) -> tuple[Outcome, bytes, int]:
        """One request on the wire: budget first, then a slot, then send and read.

        ``keep`` receives a 200 body while the slot is still held, so that a request is
        "in flight" until its body is durable: a process killed at any instant loses at
        most the requests holding slots. Returns the outcome, the body, and how many of
        our other requests were in flight when the answer came (what tells a burst 429
        from a spent day).
        """
        await self._budget.charge(what)
        status: int | None = None
        detail: Exception
        try:
            async with (
                self._limiter.slot(),
                self._session.get(
                    url, headers=headers, timeout=self._timeout, allow_redirects=False
                ) as resp,
            ):
                status = resp.status
                others = self._limiter.in_flight - 1
                body = await resp.read()
                if keep is not None and status == 200:
                    keep(body)
                return (
                    Outcome(status=status, retry_after=resp.headers.get("Retry-After")),
                    body,
                    others,
                )
        except aiohttp.ClientPayloadError as exc:
            failure, detail = Failure.TRUNCATED, exc
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            failure, detail = Failure.TIMEOUT, exc
        except aiohttp.ClientError as exc:
            failure, detail = Failure.CONNECTION, exc
        finally:
            self._budget.observe(what, status)
        self.last_failure = f"{type(detail).__name__}: {self._redact(str(detail))}"
        return Outcome(status=status, failure=failure), b"", 0

    def _throttle(self, others: int) -> Throttle:
        """Classify a 429 from what this process knows (the state issue adds the ledger)."""
        if others == 0:
            self._idle_429s += 1
        return classify_429(
            used_in_window=self._budget.used(),
            limit=self._daily_limit,
            in_flight_others=others,
            idle_429s=self._idle_429s,
        )

    async def _with_retries(
        self,
        what: str,
        url: str,
        *,
        authenticated: bool,
        keep: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """Send until a 200; the decisions are :func:`extractor.core.backoff.decide`'s."""
        attempt = 0
        reauthed = not authenticated  # a 401 on the token request means a wrong key
        while True:
            attempt += 1
            headers = None
            token: Secret | None = None
            if authenticated:
                token = await self.auth.token()
                headers = {"Authorization": f"Bearer {token.reveal()}"}
            outcome, body, others = await self._exchange(what, url, headers, keep)
            if outcome.failure is None and outcome.status == 200:
                self._idle_429s = 0
                return body
            if outcome.status == 429 and outcome.failure is None:
                outcome = replace(outcome, throttle=self._throttle(others))
            decision = decide(
                self._policy,
                attempt,
                outcome,
                rng_value=self._rng.random(),
                now=self._clock.now(),
                reauthed=reauthed,
            )
            if decision.action is Action.REAUTH:
                reauthed = True
                attempt -= 1  # a renewal is not a failed attempt
                await self.auth.renew(token)
                continue
            if decision.action is Action.GIVE_UP:
                if decision.reason is Reason.AUTH_REFUSED:
                    if not authenticated:
                        raise AuthError(
                            f"the API key was refused by {self._site} (HTTP 401): check "
                            "TWELVETWENTY_API_KEY or --key-file, and --site/--sandbox"
                        )
                    raise AuthError(
                        f"{self._site} refused a freshly issued token for {what} (HTTP 401)"
                    )
                error = error_for(decision, outcome, what)
                if outcome.failure is not None:
                    error = TransientError(f"{error} [{self.last_failure}]")
                elif outcome.status is not None and outcome.status >= 400 and body:
                    snippet = self._redact(body[:200].decode("utf-8", errors="replace"))
                    error = (
                        type(error)(f"{error}: {snippet}", status=outcome.status)
                        if isinstance(error, ApiError)
                        else error
                    )
                raise error
            self.retries += 1
            await self._clock.sleep(decision.delay)

    async def _fetch_token(self, key: Secret) -> bytes:
        url = f"{self._base}{TOKEN_PATH}?{urlencode({'key': key.reveal()})}"
        return await self._with_retries(f"token request to {self._site}", url, authenticated=False)

    async def get(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        keep: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """GET ``path`` (e.g. ``/api/v2/students``) and return the 200 body, handed to
        ``keep`` (if given) before the request's slot is released.

        Raises ApiError for a non-retryable status (naming the endpoint, never the key),
        AuthError when the key or tokens are refused, TransientError when retries ran out.
        """
        query = f"?{urlencode(params)}" if params else ""
        url = f"{self._base}{path}{query}"
        return await self._with_retries(f"GET {path}{query}", url, authenticated=True, keep=keep)
