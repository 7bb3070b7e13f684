"""A full dump against the simulator over real sockets: exact output, limits respected."""

from __future__ import annotations

import asyncio
import io
import ssl
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from extract_support import (
    assert_entity_matches,
    assert_no_secret,
    extract,
    read_entity,
)
from simulator_support import wait_until

from extractor.clock import ManualClock
from extractor.config import DEFAULT_ENTITIES, Secret
from extractor.errors import AuthError
from extractor.progress import Progress
from extractor.run import OPTIONS_ENTITY
from extractor.simulator.config import SimConfig
from extractor.simulator.server import RunningSimulator, serve
from extractor.simulator.tls import make_test_ca

# Several pages of every paged entity, small enough to extract in about a second.
SCHOOL = SimConfig(
    seed=5,
    rows={
        "students": 1_730,
        "companies": 640,
        "contacts": 1_001,
        "notes": 1_500,
        "events": 260,
        "job-postings": 499,
        "lookups": 14,
        "attributes": 75,
    },
)


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A test CA trusted through SSL_CERT_FILE, exactly as a user would set it up."""
    server_ctx, ca_file = make_test_ca(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    return server_ctx


def assert_lookup_options_match(out: Path, running: RunningSimulator) -> None:
    data = running.sim.data
    table = read_entity(out, OPTIONS_ENTITY).sort_by(
        [("LookupId", "ascending"), ("Id", "ascending")]
    )
    expected = []
    for lookup_id in data.ids("lookups"):
        options = orjson.loads(data.lookup_options(lookup_id) or b"[]")
        expected += [{"LookupId": lookup_id, **o} for o in sorted(options, key=lambda o: o["Id"])]
    got = [{k: r[k] for k in ("LookupId", "Id", "Name")} for r in table.to_pylist()]
    assert got == expected


async def test_full_dump_over_tls_lands_every_row_exactly_once(
    tmp_path: Path, tls: ssl.SSLContext
) -> None:
    out = tmp_path / "lake"
    async with serve(replace(SCHOOL, latency=0.002), ssl_context=tls) as running:
        assert running.base_url.startswith("https://")
        result = await extract(running, out)
        assert result.complete, result.error
        for entity in DEFAULT_ENTITIES:
            assert_entity_matches(out, running.sim.data, entity)
        assert_lookup_options_match(out, running)
        ledger = running.sim.ledger
        assert ledger.max_in_flight == 3, "3 in flight whenever 3 pages remain, never a 4th"
        assert ledger.total == result.requests == result.minimum_requests
        assert ledger.tokens_issued == 1
        # Entity folders hold Parquet and nothing else; run metadata is under _runs.
        for entity in (*DEFAULT_ENTITIES, OPTIONS_ENTITY):
            assert {p.suffix for p in (out / entity).iterdir()} == {".parquet"}


async def test_faults_do_not_change_the_output(tmp_path: Path) -> None:
    """10% injected faults (429, 5xx, resets, truncated bodies): still exact."""
    out = tmp_path / "lake"
    faulty = replace(
        SCHOOL,
        p_429=0.02,
        p_500=0.02,
        p_502=0.01,
        p_503=0.01,
        p_reset=0.02,
        p_truncate=0.02,
        fault_seed=11,
    )
    async with serve(faulty) as running:
        clock = ManualClock(running.sim.clock.now())
        result = await extract(running, out, clock=clock, seed=3)
        assert result.complete, result.error
        for entity in DEFAULT_ENTITIES:
            assert_entity_matches(out, running.sim.data, entity)
        assert_lookup_options_match(out, running)
        ledger = running.sim.ledger
        assert sum(ledger.faults.values()) >= 5, "the faults really happened"
        assert ledger.max_in_flight <= 3
        # Every attempt was charged: what we counted is what the server saw.
        assert result.requests == ledger.total
        assert clock.slept, "retries backed off on the injected clock"


async def test_a_token_expiring_mid_run_is_renewed(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    async with serve(replace(SCHOOL, latency=0.001)) as running:
        sim = running.sim

        async def expire_after_some_pages() -> None:
            await wait_until(lambda: sum(sim.ledger.pages.values()) >= 6, within=30)
            sim.expire_tokens()

        expirer = asyncio.create_task(expire_after_some_pages())
        result = await extract(running, out)
        await expirer
        assert result.complete, result.error
        assert sim.ledger.tokens_issued == 2
        assert sim.ledger.count(status=401) >= 1
        for entity in ("students", "notes"):
            assert_entity_matches(out, sim.data, entity)


async def test_the_key_and_token_never_reach_outputs_or_logs(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    log = io.StringIO()
    async with serve(replace(SCHOOL, p_500=0.05, p_reset=0.05, fault_seed=2)) as running:
        tokens: list[str] = []
        issue = running.sim.tokens.issue

        def recording_issue() -> str:
            tokens.append(issue())
            return tokens[-1]

        running.sim.tokens.issue = recording_issue  # type: ignore[method-assign]
        running.sim.expire_tokens()
        progress = Progress(stream=log, log_format="json", interval=0.0)
        result = await extract(running, out, progress=progress)
        assert result.complete
        assert tokens
        secrets = [running.api_key, *tokens]
        assert_no_secret([out], *secrets)
        for secret in secrets:
            assert secret not in log.getvalue()
        assert log.getvalue(), "progress was logged"


async def test_an_unknown_key_is_one_clear_auth_error_and_one_request(tmp_path: Path) -> None:
    async with serve(SCHOOL) as running:
        result = await extract(running, tmp_path / "lake", api_key=Secret("not-the-key"))
        assert isinstance(result.error, AuthError)
        assert "testschool" in str(result.error)
        assert "not-the-key" not in str(result.error)
        assert running.sim.ledger.total == 1, "a refused key is asked once, not per fetcher"
        assert not (tmp_path / "lake" / "students").exists()
