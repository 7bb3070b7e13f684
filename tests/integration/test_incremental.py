"""The nightly incremental export: only what changed, one current row per Id, every
version in the change log, deletions marked by full walks, drift kept and reported."""

from __future__ import annotations

import asyncio
import random
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pyarrow.dataset as ds
from cli_support import cli_env, extract_args, run_cli, start
from extract_support import (
    assert_entity_matches,
    parse_api_datetime,
    read_entity,
    settings_for,
)
from simulator_support import wait_until

from extractor.clock import ManualClock
from extractor.config import DEFAULT_ENTITIES
from extractor.durable import durable_extraction
from extractor.progress import Progress
from extractor.results import RunResult
from extractor.simulator.config import SimConfig
from extractor.simulator.server import RunningSimulator, serve

SCHOOL = SimConfig(
    seed=21,
    rows={
        "students": 3_100,
        "companies": 900,
        "contacts": 700,
        "notes": 1_200,
        "events": 200,
        "job-postings": 400,
        "lookups": 8,
        "attributes": 40,
    },
)
QUIET = Progress(log_format="text", interval=1e9)


async def run_once(
    running: RunningSimulator, out: Path, clock: ManualClock, **more: Any
) -> RunResult:
    settings = settings_for(running, out, state_path=out.parent / "state.sqlite3", **more)
    with durable_extraction(settings, clock=clock, progress=QUIET) as (extraction, _):
        return await extraction.run()


def changes(out: Path, entity: str) -> list[dict[str, Any]]:
    glob = f"{out}/_changes/{entity}/**/*.parquet"
    relation = duckdb.sql(
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true, union_by_name=true)"
    )
    assert relation is not None
    columns = [c[0] for c in relation.description]
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


async def test_an_incremental_run_costs_only_the_changes(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    async with serve(SCHOOL) as running:
        sim = running.sim
        clock = ManualClock(sim.clock.now())
        dump = await run_once(running, out, clock)
        assert dump.complete, dump.error
        before = {r["Id"]: r for r in sim.data.ground_truth("students")}

        clock.advance(600)
        result = sim.data.mutate("students", modify=50, add=10, now=clock.now())
        clock.advance(600)
        spent = sim.ledger.total
        nightly = await run_once(running, out, clock)
        assert nightly.complete, nightly.error
        # One request per entity's window; 60 changed students fit in one page of 500;
        # lookup options are refreshed by --full runs only; the token is still valid.
        assert "lookup-options" not in nightly.entities
        assert sim.ledger.total - spent == len(DEFAULT_ENTITIES) == nightly.requests
        students = nightly.entities["students"]
        assert (students.updated, students.inserted, students.deleted) == (50, 10, 0)
        for entity in DEFAULT_ENTITIES:
            assert_entity_matches(out, sim.data, entity)

        log = changes(out, "students")
        for id_ in result.modified:
            versions = [r for r in log if r["Id"] == id_]
            assert len(versions) == 2, "the change log holds both versions"
            assert {v["ModifyDate"].isoformat()[:19] for v in versions} != {
                before[id_]["ModifyDate"][:19]
            }
        assert all(any(r["Id"] == id_ for r in log) for id_ in result.added)

        spent = sim.ledger.total
        quiet = await run_once(running, out, clock)
        assert quiet.complete
        assert sim.ledger.total - spent == len(DEFAULT_ENTITIES), "one request per entity"
        # The lookback re-reads the last hour's 60 changes: same Ids, no new row.
        assert quiet.entities["students"].inserted == 0
        assert_entity_matches(out, sim.data, "students")


async def test_a_full_walk_marks_deleted_rows(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    async with serve(SCHOOL) as running:
        sim = running.sim
        clock = ManualClock(sim.clock.now())
        assert (await run_once(running, out, clock, entities=("companies",))).complete
        clock.advance(60)
        gone = sim.data.mutate("companies", delete=7, now=clock.now()).deleted
        incremental = await run_once(running, out, clock, entities=("companies",))
        assert incremental.entities["companies"].deleted == 0, "only a full walk sees deletions"
        full = await run_once(running, out, clock, entities=("companies",), full=True)
        assert full.entities["companies"].deleted == 7
        table = read_entity(out, "companies")
        deleted = table.filter(pc.is_valid(table.column("_deleted_at")))
        assert sorted(deleted.column("Id").to_pylist()) == sorted(gone)
        assert_entity_matches(out, sim.data, "companies")


async def test_drift_is_kept_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    async with serve(SCHOOL) as running:
        sim = running.sim
        clock = ManualClock(sim.clock.now())
        assert (await run_once(running, out, clock, entities=("students",))).complete
        sim.data.drift("students", new_fields={"Pronouns": "they/them"}, retype=("RoleId",))
        clock.advance(60)
        changed = sim.data.mutate("students", modify=30, now=clock.now()).modified
        clock.advance(60)
        result = await run_once(running, out, clock, entities=("students",))
        assert result.complete, result.error
        students = result.entities["students"]
        assert students.unknown_fields == ["Pronouns"]
        assert students.problems.get("RoleId: bad_value", 0) >= 1
        rows = {r["Id"]: r for r in read_entity(out, "students").to_pylist()}
        truth = {r["Id"]: r for r in sim.data.ground_truth("students")}
        for id_ in changed:
            row = rows[id_]
            assert row["Pronouns"] == '"they/them"', "a new field is kept (raw JSON)"
            if truth[id_]["RoleId"] is not None:
                assert row["RoleId"] is None
                assert dict(row["_raw"])["RoleId"] == f'"{truth[id_]["RoleId"]}"'
        # Rows the incremental run did not touch keep their old, typed values.
        untouched = next(i for i in rows if i not in changed and truth[i]["RoleId"])
        assert rows[untouched]["RoleId"] == int(truth[untouched]["RoleId"])

        args = ["schemas", "diff", "--site", "testschool", "--base-url", running.base_url,
                "--state", str(tmp_path / "state.sqlite3"), "--entities", "students,events"]  # fmt: skip
        done = await run_cli(args, cli_env(running))
        assert done.status == 0, done.stderr
        assert "Pronouns: not in schemas/" in done.stdout
        assert "RoleId: does not fit its declared type" in done.stdout
        assert "events: matches schemas/" in done.stdout


def snapshot_state(out: Path) -> dict[int, Any]:
    table = ds.dataset(out / "students", format="parquet").to_table(columns=["Id", "ModifyDate"])
    ids = table.column("Id").to_pylist()
    assert len(ids) == len(set(ids)), "one row per Id at every instant"
    return dict(zip(ids, table.column("ModifyDate").to_pylist(), strict=True))


def truth_state(running: RunningSimulator) -> dict[int, Any]:
    return {
        r["Id"]: parse_api_datetime(r["ModifyDate"])
        for r in running.sim.data.ground_truth("students")
    }


async def test_a_kill_during_merge_and_swap_leaves_the_old_or_the_new_snapshot(
    tmp_path: Path,
) -> None:
    out, state = tmp_path / "lake", tmp_path / "state.sqlite3"
    big = replace(SCHOOL, rows={**dict(SCHOOL.rows or {}), "students": 30_000})
    async with serve(big) as running:
        sim, env = running.sim, cli_env(running)
        args = extract_args(running, out, state, "--entities", "students")
        assert (await run_cli(args, env)).status == 0
        loop = asyncio.get_running_loop()
        rng = random.Random()
        kills, span = 0, 0.3
        for _ in range(10):  # until 3 kills landed (some runs finish before their kill)
            if kills >= 3:
                break
            old = truth_state(running)
            sim.data.mutate("students", modify=300, add=50, now=sim.clock.now())
            await asyncio.sleep(1.05)  # the next job's frozen upper bound includes the edits
            new = truth_state(running)
            before = sim.ledger.total
            proc = await start(args, env)
            await wait_until(
                lambda before=before, proc=proc: (  # type: ignore[misc]
                    proc.returncode is not None or sim.ledger.total > before
                ),
                within=60,
            )
            sent = loop.time()
            await asyncio.sleep(rng.uniform(0.0, span))
            if proc.returncode is None:
                proc.kill()
                kills += 1
            await proc.communicate()
            if proc.returncode == 0:
                span = loop.time() - sent  # aim the next kills inside a whole run
            assert snapshot_state(out) in (old, new), "the old snapshot or the new one"
            if proc.returncode != 0:
                assert proc.returncode == -signal.SIGKILL
                assert (await run_cli(args, env)).status == 0, "the next run finishes the job"
            assert snapshot_state(out) == new
        assert_entity_matches(out, sim.data, "students")
        assert kills >= 3
