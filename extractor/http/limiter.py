"""The one limiter: at most N requests of this process in flight, whatever they are for.

Every HTTP exchange (list pages, details, token fetches, retries) holds a slot only while
it is on the wire, never while it sleeps on a backoff, so a request waiting to retry
leaves its slot to another page. The state issue replaces this in-process limiter with
one that also holds across processes (file locks); both satisfy :class:`Limiter`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class Limiter(Protocol):
    """Hands out request slots."""

    @property
    def in_flight(self) -> int:
        """Slots of this process held right now."""
        ...

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Hold one slot for the duration of the ``async with`` block."""
        ...


class LocalLimiter:
    """An asyncio semaphore that also records the highest concurrency it granted."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a limiter needs at least one slot")
        self.slots = slots
        self._sem = asyncio.Semaphore(slots)
        self._in_flight = 0
        self.max_in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._sem:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                yield
            finally:
                self._in_flight -= 1
