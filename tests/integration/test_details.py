"""Detail enrichment: one request per new or changed record, durable across stops and
kills, merged into the snapshot with every field."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from cli_support import cli_env, extract_args, run_cli, start
from extract_support import expected_value, read_entity, settings_for
from simulator_support import wait_until

from extractor.clock import ManualClock
from extractor.core.budget import DAY
from extractor.durable import durable_extraction
from extractor.errors import BudgetExhausted
from extractor.progress import Progress
from extractor.records.schema import load_schemas
from extractor.results import RunResult
from extractor.simulator.config import SimConfig
from extractor.simulator.server import RunningSimulator, serve

SCHOOL = SimConfig(seed=31, rows={"students": 640, "companies": 120, "lookups": 3})
ENTITIES = ("students", "companies")
QUIET = Progress(log_format="text", interval=1e9)
STUDENT_FIELDS = load_schemas()["students"].fields


async def run_once(
    running: RunningSimulator, out: Path, clock: ManualClock, **more: Any
) -> RunResult:
    settings = settings_for(
        running, out, state_path=out.parent / "state.sqlite3", entities=ENTITIES,
        details=("students",), **more,
    )  # fmt: skip
    with durable_extraction(settings, clock=clock, progress=QUIET) as (extraction, _):
        return await extraction.run()


def assert_details_match(out: Path, running: RunningSimulator) -> None:
    """Every live student has every field, equal to what its detail endpoint serves."""
    table = read_entity(out, "students")
    table = table.filter(pc.is_null(table.column("_deleted_at")))
    rows = {r["Id"]: r for r in table.to_pylist()}
    truth = {r["Id"]: r for r in running.sim.data.ground_truth("students")}
    assert sorted(rows) == sorted(truth)
    for id_, want in truth.items():
        row = rows[id_]
        assert row["_detail_fetched_at"] is not None, f"details of {id_} pending"
        for field in STUDENT_FIELDS:
            have, expected = row[field.name], expected_value(want.get(field.name), field.spec)
            if isinstance(expected, list) and expected and isinstance(expected[0], tuple):
                have = sorted(have or [])
            assert have == expected, f"{id_}.{field.name}: {have!r} != {expected!r}"


async def test_enrichment_costs_one_request_per_new_or_changed_record(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    async with serve(SCHOOL) as running:
        sim = running.sim
        plan = await run_cli(
            ["plan", "--site", "testschool", "--base-url", running.base_url,
             "--out", str(tmp_path / "plan-lake"), "--state", str(tmp_path / "plan.sqlite3"),
             "--entities", ",".join(ENTITIES), "--details", "students"],
            cli_env(running),
        )  # fmt: skip
        assert plan.status == 0, plan.stderr
        n = sim.data.count("students")
        assert "students:details" in plan.stdout
        assert f"{n} in this run's list window" in plan.stdout
        assert "days needed: 1" in plan.stdout
        sim.ledger.total = 0  # count the extraction's requests alone below
        sim.ledger.details.clear()
        clock = ManualClock(sim.clock.now())
        first = await run_once(running, out, clock)
        assert first.complete, first.error
        n = sim.data.count("students")
        # token + list pages (2 students, 1 companies) + one detail per student
        assert sim.ledger.total == first.requests == 1 + 2 + 1 + n
        assert sim.ledger.details["students"] == n
        assert_details_match(out, running)

        clock.advance(60)
        changed = sim.data.mutate("students", modify=20, now=clock.now())
        clock.advance(60)
        spent = sim.ledger.total
        second = await run_once(running, out, clock)
        assert second.complete, second.error
        assert sim.ledger.total - spent == 2 + 20, "one list request per entity + 20 details"
        assert second.entities["students:details"].rows == 20
        assert_details_match(out, running)

        # The lookback re-reads those 20 (unchanged since): their details are not fetched again.
        spent = sim.ledger.total
        third = await run_once(running, out, clock)
        assert third.complete
        assert sim.ledger.total - spent == 2
        assert len(changed.modified) == 20


async def test_a_record_gone_before_its_details_is_marked_deleted(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    async with serve(SCHOOL) as running:
        sim = running.sim
        clock = ManualClock(sim.clock.now())
        original = sim.data.detail

        def vanish(entity: str, id_: int) -> bytes | None:
            return None if entity == "students" and id_ in doomed else original(entity, id_)

        doomed = set(sim.data.ids("students")[:3])
        sim.data.detail = vanish  # type: ignore[method-assign]
        result = await run_once(running, out, clock)
        assert result.complete, result.error
        assert sim.ledger.count("/api/v2/students/{id}", 404) == 3, "each asked once"
        table = read_entity(out, "students")
        deleted = table.filter(pc.is_valid(table.column("_deleted_at"))).column("Id").to_pylist()
        assert sorted(deleted) == sorted(doomed)


async def test_a_budget_stop_mid_enrichment_resumes_in_the_next_window(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    async with serve(SCHOOL) as running:
        sim = running.sim
        clock = ManualClock(sim.clock.now())
        n = sim.data.count("students")
        needed = 1 + 3 + n
        limit = needed * 3 // 5
        first = await run_once(running, out, clock, max_requests_per_day=limit)
        assert isinstance(first.error, BudgetExhausted)
        assert first.requests == limit
        assert first.entities["students:details"].status == "stopped"
        # Pending records are present with their list fields, and say so.
        table = read_entity(out, "students")
        assert table.num_rows == n
        pending = table.filter(pc.is_null(table.column("_detail_fetched_at"))).num_rows
        assert pending > 0
        state = out.parent / "state.sqlite3"
        status = await run_cli(
            ["status", "--site", "testschool", "--state", str(state),
             "--max-requests-per-day", str(limit)],
            cli_env(running),
        )  # fmt: skip
        left = first.entities["students:details"].remaining
        assert f"students         {left} records' details pending: {left} requests" in status.stdout
        assert "day(s) of budget" in status.stdout
        clock.advance(DAY)
        second = await run_once(running, out, clock, max_requests_per_day=limit)
        assert second.complete, second.error
        assert sim.ledger.details["students"] == n, "no detail fetched twice"
        assert_details_match(out, running)


async def test_sigkill_mid_enrichment_refetches_no_completed_detail(tmp_path: Path) -> None:
    out, state = tmp_path / "lake", tmp_path / "state.sqlite3"
    async with serve(SCHOOL) as running:
        sim, env = running.sim, cli_env(running)
        args = extract_args(
            running, out, state, "--entities", ",".join(ENTITIES), "--details", "students"
        )
        n = sim.data.count("students")
        rng = random.Random()
        kills = 0
        while True:
            before = sim.ledger.details["students"]
            proc = await start(args, env)
            await wait_until(
                lambda before=before, proc=proc: (  # type: ignore[misc]
                    proc.returncode is not None or sim.ledger.details["students"] > before
                ),
                within=60,
            )
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            if proc.returncode is None:
                proc.kill()
                kills += 1
            await proc.communicate()
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL
            if kills >= 4:
                done = await run_cli(args, env)
                assert done.status == 0, done.stderr
                break
        assert sim.ledger.details["students"] <= n + 3 * kills, "completed details kept"
        assert_details_match(out, running)
