"""A separate process for the multi-process state tests (run as a script, not collected).

Each subcommand does one thing another process of the extractor would do, and reports on
stdout, one flushed line per event, so the parent can count what was acknowledged:

- ``charge DB CAPACITY WINDOW START_AT ATTEMPTS NOW``: wait until wall time START_AT (so
  workers start together), then call ``charge`` ATTEMPTS times at ledger time NOW, printing
  ``G`` per grant and ``R`` per refusal, then ``done``.
- ``hold-tx DB``: open a write transaction, insert rows, print ``in-tx``, and sleep inside it.
- ``slots DIR N TASKS SECONDS START_AT OUT``: TASKS tasks take and release slots of a
  FileSlots for SECONDS, recording each hold as a (start, end) ``time.monotonic`` interval
  (system-wide on Linux, so comparable across processes); the intervals go to OUT as JSON.
- ``hold-slots DIR N K``: take K slots, print ``held``, and sleep holding them.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from extractor.core.budget import BudgetPolicy, WindowKind
from extractor.http.slots import FileSlots
from extractor.state.store import StateStore


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _sleep_until(wall: float) -> None:
    time.sleep(max(0.0, wall - time.time()))


def charge(db: str, capacity: str, window: str, start_at: str, attempts: str, now: str) -> None:
    policy = BudgetPolicy(limit=int(capacity), window=WindowKind(window))
    with StateStore.open(Path(db)) as store:
        _sleep_until(float(start_at))
        for i in range(int(attempts)):
            grant = store.charge(float(now), policy, f"GET /api/students?page={i}&key=SECRET")
            _say("G" if grant.granted else "R")
    _say("done")


def hold_tx(db: str) -> None:
    with StateStore.open(Path(db)):
        pass  # created and migrated: now write behind the store's back
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO ledger (at, what) VALUES (?, 'uncommitted')", [(1.0,)] * 1000)
    _say("in-tx")
    time.sleep(60)


async def _slots(directory: str, n: int, tasks: int, seconds: float) -> list[tuple[float, float]]:
    intervals: list[tuple[float, float]] = []
    rng = random.Random()
    with FileSlots(Path(directory), n, poll=0.001, max_poll=0.004) as slots:
        deadline = time.monotonic() + seconds

        async def work() -> None:
            while time.monotonic() < deadline:
                async with slots.slot():
                    start = time.monotonic()
                    await asyncio.sleep(rng.uniform(0.0005, 0.003))
                    intervals.append((start, time.monotonic()))
                await asyncio.sleep(0)

        await asyncio.gather(*(work() for _ in range(tasks)))
    return intervals


def slots(directory: str, n: str, tasks: str, seconds: str, start_at: str, out: str) -> None:
    _sleep_until(float(start_at))
    intervals = asyncio.run(_slots(directory, int(n), int(tasks), float(seconds)))
    Path(out).write_text(json.dumps(intervals))


async def _hold(directory: str, n: int, k: int) -> None:
    slots = FileSlots(Path(directory), n)
    entered = 0

    async def hold() -> None:
        nonlocal entered
        async with slots.slot():
            entered += 1
            if entered == k:
                _say("held")
            await asyncio.sleep(60)

    await asyncio.gather(*(hold() for _ in range(k)))


def hold_slots(directory: str, n: str, k: str) -> None:
    asyncio.run(_hold(directory, int(n), int(k)))


COMMANDS: dict[str, Callable[..., None]] = {
    "charge": charge,
    "hold-tx": hold_tx,
    "slots": slots,
    "hold-slots": hold_slots,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
