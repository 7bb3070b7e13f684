"""Authentication against the simulator over real sockets: key -> token -> Bearer."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import orjson
import pytest
from simulator_support import START, TOKEN_PATH, bearer, config, get_token, simulator

from extractor.clock import ManualClock
from extractor.simulator.routes import TOKEN_TEMPLATE
from extractor.simulator.server import serve
from extractor.simulator.tls import make_test_ca


async def test_the_key_buys_an_opaque_plain_text_token() -> None:
    async with simulator() as (running, session):
        async with session.get(TOKEN_PATH, params={"key": running.api_key}) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            token = await resp.text()
        assert 140 <= len(token) <= 160
        assert "." not in token and '"' not in token
        assert running.sim.ledger.tokens_issued == 1
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            assert resp.status == 200


async def test_key_parameter_and_route_are_case_insensitive() -> None:
    async with simulator() as (running, session):
        url = f"/API/Client/GenerateAuthenticationToken?Key={running.api_key}"
        async with session.get(url) as resp:
            assert resp.status == 200


@pytest.mark.parametrize("params", [{}, {"key": "wrong"}, {"key": ""}, {"apikey": "x"}])
async def test_missing_or_wrong_key_is_401(params: dict[str, str]) -> None:
    async with simulator() as (running, session):
        async with session.get(TOKEN_PATH, params=params) as resp:
            assert resp.status == 401
            assert resp.content_type == "application/json"
            body = await resp.json()
        assert "Message" in body
        assert running.sim.ledger.tokens_issued == 0
        assert running.sim.ledger.count(TOKEN_TEMPLATE, 401) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
)
async def test_data_routes_need_a_valid_bearer_token(headers: dict[str, str]) -> None:
    async with simulator() as (_running, session):
        for path in ("/api/v2/students", "/api/v2/students/10000000", "/api/v2/documentation"):
            async with session.get(path, headers=headers) as resp:
                assert resp.status == 401
                assert (await resp.json())["Message"]


async def test_bearer_scheme_is_case_insensitive() -> None:
    async with simulator() as (running, session):
        token = await get_token(session, running)
        async with session.get(
            "/api/v2/companies", headers={"authorization": f"bearer {token}"}
        ) as resp:
            assert resp.status == 200


async def test_tokens_expire_24_hours_after_issue_in_the_simulator_clock() -> None:
    clock = ManualClock(START)
    async with simulator(clock=clock) as (running, session):
        token = await get_token(session, running)
        clock.advance(24 * 3600 - 1)
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            assert resp.status == 200
        clock.advance(1)
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            assert resp.status == 401
        fresh = await get_token(session, running)
        assert fresh != token
        async with session.get("/api/v2/students", headers=bearer(fresh)) as resp:
            assert resp.status == 200


async def test_token_lifetime_is_configurable_and_expire_tokens_ends_them() -> None:
    clock = ManualClock(START)
    async with simulator(config(token_lifetime=60), clock=clock) as (running, session):
        token = await get_token(session, running)
        clock.advance(60)
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            assert resp.status == 401
        token = await get_token(session, running)
        running.sim.expire_tokens()
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            assert resp.status == 401


async def test_json_quoted_token_format() -> None:
    """Some deployments JSON-quote the token; clients must tolerate it."""
    async with simulator(config(token_format="json")) as (running, session):
        async with session.get(TOKEN_PATH, params={"key": running.api_key}) as resp:
            assert resp.content_type == "application/json"
            raw = await resp.read()
        token = orjson.loads(raw)
        assert raw.startswith(b'"')
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            assert resp.status == 200


async def test_https_with_a_trustme_ca(tmp_path: Path) -> None:
    """The API is HTTPS-only: a verifying client trusting only the test CA gets through."""
    server_ctx, ca_file = make_test_ca(tmp_path)
    assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    async with serve(config(), clock=ManualClock(START), ssl_context=server_ctx) as running:
        assert running.base_url.startswith("https://127.0.0.1:")
        client_ctx = ssl.create_default_context(cafile=str(ca_file))
        connector = aiohttp.TCPConnector(ssl=client_ctx)
        async with aiohttp.ClientSession(running.base_url, connector=connector) as session:
            token = await get_token(session, running)
            async with session.get("/api/v2/lookups", headers=bearer(token)) as resp:
                assert resp.status == 200
                assert (await resp.json())["Total"] == 30
        # A client that trusts only the system store refuses the private CA.
        async with aiohttp.ClientSession(running.base_url) as untrusting:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.get(TOKEN_PATH)
