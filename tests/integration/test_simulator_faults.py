"""Each injected fault, as a real aiohttp client experiences it."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from simulator_support import START, TOKEN_PATH, bearer, config, simulator, wait_until

from extractor.clock import ManualClock
from extractor.simulator.config import SimConfig
from extractor.simulator.data import ListFilter
from extractor.simulator.routes import TOKEN_TEMPLATE
from extractor.simulator.server import RunningSimulator, serve
from extractor.simulator.tls import make_test_ca

STUDENTS = "/api/v2/students"


@asynccontextmanager
async def fresh_connections(
    cfg: SimConfig,
) -> AsyncIterator[tuple[RunningSimulator, aiohttp.ClientSession]]:
    """A simulator and a client that opens a new connection per request."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        serve(cfg, clock=ManualClock(START)) as running,
        aiohttp.ClientSession(running.base_url, connector=connector) as session,
    ):
        yield running, session


async def test_reset_closes_the_connection_without_a_response() -> None:
    async with fresh_connections(config()) as (running, session):
        token = running.sim.issue_token()
        # Two resets: aiohttp resends an idempotent request once by itself (next test).
        running.sim.faults.schedule("reset", "reset")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with session.get(STUDENTS, headers=bearer(token)) as resp:
                await resp.read()
        async with session.get(STUDENTS, headers=bearer(token)) as resp:
            assert resp.status == 200  # the next request is fine
        ledger = running.sim.ledger
        assert ledger.faults == {"reset": 2}
        assert ledger.count(STUDENTS, 0) == 2  # status 0: no response
        assert ledger.total == 3


async def test_aiohttp_silently_resends_a_get_after_a_reset() -> None:
    """aiohttp retries an idempotent request once when the connection drops, without
    telling the caller: one client call, two requests charged to the school's quota."""
    async with simulator() as (running, session):
        token = running.sim.issue_token()
        running.sim.faults.schedule("reset")
        async with session.get(STUDENTS, headers=bearer(token)) as resp:
            assert resp.status == 200
        assert running.sim.ledger.total == 2
        assert running.sim.ledger.count(STUDENTS, 0) == 1


async def test_truncate_announces_the_length_then_stops_short() -> None:
    async with fresh_connections(config()) as (running, session):
        token = running.sim.issue_token()
        running.sim.faults.schedule("truncate")
        async with session.get(STUDENTS, headers=bearer(token)) as resp:
            assert resp.status == 200
            announced = int(resp.headers["Content-Length"])
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        async with session.get(STUDENTS, headers=bearer(token)) as resp:
            assert len(await resp.read()) == announced
        assert running.sim.ledger.faults == {"truncate": 1}
        assert running.sim.ledger.count(STUDENTS, 200) == 2


async def test_slow_body_times_out_an_impatient_client() -> None:
    async with fresh_connections(config(slow_seconds=0.3)) as (running, session):
        token = running.sim.issue_token()
        running.sim.faults.schedule("slow")
        with pytest.raises(aiohttp.SocketTimeoutError):
            async with session.get(
                STUDENTS,
                headers=bearer(token),
                timeout=aiohttp.ClientTimeout(sock_read=0.01),
            ) as resp:
                await resp.read()
        assert running.sim.ledger.faults == {"slow": 1}


async def test_slow_body_arrives_whole_and_late_and_holds_its_slot() -> None:
    async with fresh_connections(config(slow_seconds=0.2)) as (running, session):
        sim = running.sim
        token = sim.issue_token()
        expected = sim.data.list_page("students", 1, 25, ListFilter())
        sim.faults.schedule("slow")
        started = time.perf_counter()
        async with session.get(STUDENTS, headers=bearer(token)) as resp:
            assert resp.status == 200
            await wait_until(lambda: sim.in_flight == 1)  # still counted while dribbling
            body = await resp.read()
        assert time.perf_counter() - started >= 0.2
        assert body == expected
        assert sim.in_flight == 0


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("429", "application/json"),
        ("500", "application/json"),
        ("502", "text/html"),
        ("503", "text/html"),
    ],
)
async def test_status_faults(kind: str, content_type: str) -> None:
    async with simulator() as (running, session):
        token = running.sim.issue_token()
        running.sim.faults.schedule(kind)
        async with session.get(STUDENTS, headers=bearer(token)) as resp:
            assert resp.status == int(kind)
            assert resp.content_type == content_type
            assert await resp.read()
        assert running.sim.ledger.faults == {kind: 1}
        assert running.sim.ledger.refused == {}  # an injected 429 is not a real refusal
        assert running.sim.ledger.count(STUDENTS, int(kind)) == 1


async def test_probabilities_apply_to_the_token_route_too() -> None:
    async with simulator(config(p_503=1.0)) as (running, session):
        async with session.get(TOKEN_PATH, params={"key": running.api_key}) as resp:
            assert resp.status == 503
        assert running.sim.ledger.count(TOKEN_TEMPLATE, 503) == 1
        assert running.sim.ledger.tokens_issued == 0


async def test_fault_routes_restrict_where_faults_happen() -> None:
    cfg = config(p_500=1.0, fault_routes=frozenset({"/api/v2/notes"}))
    async with simulator(cfg) as (running, session):
        async with session.get(TOKEN_PATH, params={"key": running.api_key}) as resp:
            token = await resp.text()
            assert resp.status == 200
        async with session.get("/api/v2/companies", headers=bearer(token)) as resp:
            assert resp.status == 200
        async with session.get("/api/v2/notes", headers=bearer(token)) as resp:
            assert resp.status == 500


async def test_random_faults_hit_at_the_configured_rate() -> None:
    async with fresh_connections(config(p_500=0.2, p_502=0.2, fault_seed=5)) as (running, session):
        token = running.sim.issue_token()
        statuses = []
        for _ in range(100):
            async with session.get("/api/v2/lookups", headers=bearer(token)) as resp:
                statuses.append(resp.status)
        faults = running.sim.ledger.faults
        assert statuses.count(500) == faults["500"] and statuses.count(502) == faults["502"]
        assert 10 <= faults["500"] <= 30 and 10 <= faults["502"] <= 30
        assert statuses.count(200) == 100 - faults["500"] - faults["502"]


async def test_faults_reach_a_client_over_tls_the_same_way(tmp_path: Path) -> None:
    server_ctx, ca_file = make_test_ca(tmp_path)
    client_ctx = ssl.create_default_context(cafile=str(ca_file))
    connector = aiohttp.TCPConnector(ssl=client_ctx, force_close=True)
    async with (
        serve(config(), clock=ManualClock(START), ssl_context=server_ctx) as running,
        aiohttp.ClientSession(running.base_url, connector=connector) as session,
    ):
        token = running.sim.issue_token()
        running.sim.faults.schedule("truncate", "reset", "reset")
        async with session.get(STUDENTS, headers=bearer(token)) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.get(STUDENTS, headers=bearer(token))
