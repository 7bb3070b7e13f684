"""Shared pieces of the simulator's integration tests (not a test module itself)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from extractor.clock import ManualClock
from extractor.simulator.config import SimConfig
from extractor.simulator.server import RunningSimulator, serve

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TOKEN_PATH = "/api/client/generateAuthenticationToken"

# A small school: fast to build, still several pages of every paged entity.
SMALL = SimConfig(scale=0.02, rows={"students": 1203, "lookups": 30})


def config(**overrides: Any) -> SimConfig:
    """The small test school with ``overrides``."""
    return replace(SMALL, **overrides)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def simulator(
    cfg: SimConfig | None = None, *, clock: ManualClock | None = None
) -> AsyncIterator[tuple[RunningSimulator, aiohttp.ClientSession]]:
    """A served simulator and a client session to it, both closed on exit."""
    async with (
        serve(cfg or SMALL, clock=clock or ManualClock(START)) as running,
        aiohttp.ClientSession(running.base_url) as session,
    ):
        yield running, session


async def get_token(session: aiohttp.ClientSession, running: RunningSimulator) -> str:
    """A token through the real (counted) token route."""
    async with session.get(TOKEN_PATH, params={"key": running.api_key}) as resp:
        assert resp.status == 200
        return await resp.text()


async def wait_until(predicate: Callable[[], bool], within: float = 2.0) -> None:
    """Poll ``predicate`` on the event loop until true (fails after ``within`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)
