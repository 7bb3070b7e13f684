"""Replies a real server rarely produces, and the client's answer to each."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from extract_support import assert_entity_matches, extract

from extractor.clock import ManualClock
from extractor.simulator.config import SimConfig
from extractor.simulator.server import serve

SMALL = SimConfig(seed=4, rows={"events": 700, "lookups": 3})


async def test_retry_after_is_honoured_on_the_injected_clock(tmp_path: Path) -> None:
    async with serve(replace(SMALL, retry_after=7)) as running:
        running.sim.faults.schedule(None, "429", "429")  # the token, then two 429s
        clock = ManualClock(running.sim.clock.now())
        result = await extract(running, tmp_path / "lake", clock=clock, entities=("events",))
        assert result.complete, result.error
        assert running.sim.ledger.faults["429"] == 2
        assert clock.slept and min(clock.slept) >= 7, "never sooner than Retry-After says"
        assert_entity_matches(tmp_path / "lake", running.sim.data, "events")


async def test_a_complete_but_garbled_page_is_fetched_again(tmp_path: Path) -> None:
    """A 200 whose body has the announced length but is not JSON: the HTTP layer cannot
    tell, the converter can; the page is fetched again and nothing is lost."""
    async with serve(SMALL) as running:
        running.sim.faults.schedule(None, None, "garble")  # token, page 1, then page 2
        result = await extract(running, tmp_path / "lake", entities=("events",))
        assert result.complete, result.error
        assert running.sim.ledger.faults["garble"] == 1
        assert result.entities["events"].refetched_pages == 1
        assert running.sim.ledger.total == 4, "token, 2 pages, 1 page again"
        assert_entity_matches(tmp_path / "lake", running.sim.data, "events")
