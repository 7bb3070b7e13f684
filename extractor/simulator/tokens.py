"""Authentication tokens: opaque, random, valid for a lifetime in the simulator clock.

The real token is a ~150-character base64 string, not a JWT: clients must treat it as an
opaque value. Expiry is measured on the injected clock so tests move a ``ManualClock``
past 24 hours instead of waiting, and :meth:`TokenStore.expire` ends tokens on demand.
"""

from __future__ import annotations

import base64
import hmac
import random
import secrets
from datetime import datetime, timedelta

from extractor.clock import Clock

# 112 random bytes -> 152 base64 characters ending in "==", like .NET's Convert.ToBase64String.
TOKEN_BYTES = 112


class TokenStore:
    """Issued tokens and when each expires.

    ``rng`` makes tokens reproducible in tests; without it they come from :mod:`secrets`.
    """

    def __init__(
        self, clock: Clock, *, lifetime: timedelta, rng: random.Random | None = None
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._rng = rng
        self._expiry: dict[str, datetime] = {}

    def _random_bytes(self) -> bytes:
        if self._rng is None:
            return secrets.token_bytes(TOKEN_BYTES)
        return self._rng.randbytes(TOKEN_BYTES)

    def issue(self) -> str:
        """A fresh token valid for the lifetime from now; drops tokens already expired."""
        now = self._clock.now()
        self._expiry = {t: e for t, e in self._expiry.items() if e > now}
        token = base64.b64encode(self._random_bytes()).decode("ascii")
        self._expiry[token] = now + self._lifetime
        return token

    def is_valid(self, token: str) -> bool:
        """True if ``token`` was issued here and has not expired."""
        expiry = self._expiry.get(token)
        return expiry is not None and self._clock.now() < expiry

    def expire(self, token: str | None = None) -> None:
        """End ``token`` now (every token when None), as if its lifetime had run out."""
        if token is None:
            self._expiry.clear()
        else:
            self._expiry.pop(token, None)

    def expires_at(self, token: str) -> datetime | None:
        """When ``token`` expires, or None if unknown."""
        return self._expiry.get(token)


def key_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of an offered API key with the school's."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
