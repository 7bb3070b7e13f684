"""The article's limits, observed from a real client: 3 in flight, N per UTC day, all counted."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
from simulator_support import (
    START,
    TOKEN_PATH,
    bearer,
    config,
    get_token,
    simulator,
    wait_until,
)

from extractor.clock import ManualClock
from extractor.simulator.routes import TOKEN_TEMPLATE, UNMATCHED_TEMPLATE


async def _status(session: aiohttp.ClientSession, path: str, token: str) -> int:
    async with session.get(path, headers=bearer(token)) as resp:
        await resp.read()
        return resp.status


async def test_a_fourth_request_in_flight_is_refused_at_once() -> None:
    async with simulator() as (running, session):
        sim = running.sim
        token = await get_token(session, running)
        sim.pause()
        held = [asyncio.create_task(_status(session, "/api/v2/students", token)) for _ in range(3)]
        await wait_until(lambda: sim.in_flight == 3)
        # While three are really held in flight, the fourth is refused without waiting.
        async with session.get("/api/v2/companies", headers=bearer(token)) as resp:
            assert resp.status == 429
            assert "Retry-After" not in resp.headers
            assert (await resp.json())["Message"] == "Too many requests"
        assert not any(task.done() for task in held)
        sim.resume()
        assert await asyncio.gather(*held) == [200, 200, 200]
        assert await _status(session, "/api/v2/companies", token) == 200
        ledger = sim.ledger
        assert ledger.refused == {"burst": 1}
        assert ledger.max_in_flight == 4  # the refused arrival was in flight too
        assert ledger.count("/api/v2/companies", 429) == 1
        assert ledger.total == 6
        assert sim.in_flight == 0


async def test_latency_holds_the_slot_so_four_at_once_means_one_429() -> None:
    async with simulator(config(latency=0.05)) as (running, session):
        token = running.sim.issue_token()
        statuses = await asyncio.gather(
            *(_status(session, "/api/v2/notes", token) for _ in range(4))
        )
        assert sorted(statuses) == [200, 200, 200, 429]


async def test_three_at_a_time_is_never_refused() -> None:
    async with simulator(config(latency=0.005, latency_jitter=0.005)) as (running, session):
        token = running.sim.issue_token()
        slots = asyncio.Semaphore(3)

        async def one() -> int:
            async with slots:
                return await _status(session, "/api/v2/students", token)

        statuses = await asyncio.gather(*(one() for _ in range(30)))
        assert statuses == [200] * 30
        assert running.sim.ledger.max_in_flight == 3
        assert running.sim.ledger.refused == {}


async def test_daily_limit_then_reset_at_utc_midnight() -> None:
    clock = ManualClock(START)
    async with simulator(config(daily_limit=5), clock=clock) as (running, session):
        sim = running.sim
        token = await get_token(session, running)  # 1
        assert await _status(session, "/api/v2/students", token) == 200  # 2
        assert await _status(session, "/api/v2/students/1", token) == 404  # 3
        assert await _status(session, "/api/v2/students", "bad") == 401  # 4
        assert await _status(session, "/api/v2/students", token) == 200  # 5
        for _ in range(3):  # 6, 7, 8: spent, whatever the route
            assert await _status(session, "/api/v2/students", token) == 429
        async with session.get(TOKEN_PATH, params={"key": running.api_key}) as resp:
            assert resp.status == 429  # 9: token calls are refused too
        assert sim.limiter.used_today == 9
        assert sim.ledger.refused == {"quota": 4}
        clock.set(datetime(2026, 1, 5, 23, 59, 59, tzinfo=UTC))
        assert await _status(session, "/api/v2/students", token) == 429
        clock.set(datetime(2026, 1, 6, 0, 0, 0, tzinfo=UTC))
        assert await _status(session, "/api/v2/students", token) == 200
        assert sim.ledger.per_day == {"2026-01-05": 10, "2026-01-06": 1}


async def test_quota_and_burst_429s_look_the_same() -> None:
    async with simulator(config(daily_limit=3)) as (running, session):
        sim = running.sim
        token = sim.issue_token()
        sim.pause()
        held = [asyncio.create_task(_status(session, "/api/v2/students", token)) for _ in range(2)]
        await wait_until(lambda: sim.in_flight == 2)
        sim.limiter.max_concurrency = 2
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            burst = (resp.status, resp.headers.get("Retry-After"), await resp.read())
        sim.resume()
        assert await asyncio.gather(*held) == [200, 200]
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            quota = (resp.status, resp.headers.get("Retry-After"), await resp.read())
        assert burst == quota
        assert burst[0] == 429
        assert sim.ledger.refused == {"burst": 1, "quota": 1}


async def test_retry_after_knob_adds_the_header() -> None:
    async with (
        simulator(config(daily_limit=0, retry_after=7)) as (_, session),
        session.get("/api/v2/students", headers=bearer("x")) as resp,
    ):
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"


async def test_refusals_skip_latency() -> None:
    async with simulator(config(daily_limit=1, latency=0.3)) as (running, session):
        token = running.sim.issue_token()
        assert await _status(session, "/api/v2/lookups", token) == 200
        started = time.perf_counter()
        assert await _status(session, "/api/v2/lookups", token) == 429
        assert time.perf_counter() - started < 0.25


async def test_latency_and_jitter_are_real_delays() -> None:
    async with simulator(config(latency=0.04, latency_jitter=0.02)) as (running, session):
        token = running.sim.issue_token()
        for _ in range(3):
            started = time.perf_counter()
            assert await _status(session, "/api/v2/lookups", token) == 200
            assert 0.04 <= time.perf_counter() - started < 0.5


async def test_every_request_is_counted_by_route_and_status() -> None:
    async with simulator(config(daily_limit=8)) as (running, session):
        sim = running.sim
        async with session.get(TOKEN_PATH, params={"key": "nope"}) as resp:
            assert resp.status == 401
        token = await get_token(session, running)
        assert await _status(session, "/api/v2/students", token) == 200
        assert await _status(session, "/Api/V2/Students", token) == 200
        assert await _status(session, "/api/v2/students?PageSize=9999", token) == 400
        assert await _status(session, "/api/v2/students/10000000", token) == 200
        assert await _status(session, "/api/v2/students", "expired") == 401
        assert await _status(session, "/no/such/route", token) == 404
        assert await _status(session, "/api/v2/students", token) == 429
        async with session.get("/_sim/ledger") as resp:  # not counted
            assert resp.status == 200
        assert sim.ledger.total == 9
        assert sim.limiter.used_today == 9
        assert dict(sim.ledger.requests) == {
            (TOKEN_TEMPLATE, 401): 1,
            (TOKEN_TEMPLATE, 200): 1,
            ("/api/v2/students", 200): 2,
            ("/api/v2/students", 400): 1,
            ("/api/v2/students", 401): 1,
            ("/api/v2/students", 429): 1,
            ("/api/v2/students/{id}", 200): 1,
            (UNMATCHED_TEMPLATE, 404): 1,
        }
        assert sim.ledger.pages == {"students": 2}


async def test_other_integrations_share_the_quota() -> None:
    async with simulator() as (running, session):
        sim = running.sim
        sim.limiter.spend(4999)
        token = sim.issue_token()
        assert await _status(session, "/api/v2/events", token) == 200
        assert await _status(session, "/api/v2/events", token) == 429
        sim.limiter.daily_limit = 6000  # settable at run time
        assert await _status(session, "/api/v2/events", token) == 200
