"""API key -> bearer token: fetched once, reused for its 24 hours, renewed on a 401.

The token endpoint takes the key in the query string, so the URL of that request is a
secret: it is built here and nowhere else, and never appears in an error message. Only one
token fetch runs at a time: when several requests see a 401 together, the first renews the
token and the others reuse the new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import orjson

from extractor.clock import Clock
from extractor.config import Secret
from extractor.errors import AuthError

TOKEN_PATH = "/api/client/generateAuthenticationToken"
TOKEN_LIFETIME = timedelta(hours=24)
# Renew a little before the server's 24 h so that a token never expires mid-request.
RENEW_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Token:
    """A bearer token and when it was issued (aware UTC)."""

    value: Secret
    issued_at: datetime

    def fresh(self, now: datetime) -> bool:
        return now < self.issued_at + TOKEN_LIFETIME - RENEW_MARGIN


class TokenStore(Protocol):
    """Where a token survives between runs (the state database)."""

    def load_token(self) -> Token | None: ...

    def save_token(self, token: Token) -> None: ...


# Performs the token request: given the key, returns the 200 body (raising AuthError when
# the key is refused). Supplied by the client so that the fetch goes through the same
# limiter, ledger and retries as every other request.
FetchToken = Callable[[Secret], Awaitable[bytes]]


def parse_token_body(body: bytes) -> str:
    """The token from the endpoint's body: raw text, or a JSON-quoted string."""
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith('"'):
        try:
            decoded = orjson.loads(text)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, str):
            text = decoded.strip()
    return text


class TokenManager:
    """Hands out a valid token, fetching or renewing it as needed."""

    def __init__(
        self,
        key: Secret,
        fetch: FetchToken,
        clock: Clock,
        *,
        site: str,
        store: TokenStore | None = None,
    ) -> None:
        self._key = key
        self._fetch = fetch
        self._clock = clock
        self._site = site
        self._store = store
        self._token: Token | None = store.load_token() if store else None
        self._lock = asyncio.Lock()
        self._refused: AuthError | None = None  # a refused key stays refused: ask once
        self.fetches = 0

    async def token(self) -> Secret:
        """A token that is not about to expire."""
        current = self._token
        if current is not None and current.fresh(self._clock.now()):
            return current.value
        return await self.renew(current.value if current else None)

    async def renew(self, rejected: Secret | None) -> Secret:
        """Fetch a new token, unless another task already replaced ``rejected``."""
        async with self._lock:
            if self._refused is not None:
                raise self._refused
            current = self._token
            if (
                current is not None
                and current.value != rejected
                and current.fresh(self._clock.now())
            ):
                return current.value
            self.fetches += 1
            try:
                body = await self._fetch(self._key)
            except AuthError as exc:
                self._refused = exc
                raise
            text = parse_token_body(body)
            if not text:
                raise AuthError(f"{self._site} answered the token request with an empty body")
            token = Token(Secret(text), self._clock.now())
            self._token = token
            if self._store is not None:
                self._store.save_token(token)
            return token.value
