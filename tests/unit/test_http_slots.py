"""extractor.http.slots: FileSlots holds at most N slots, in one process and across objects.

Two FileSlots on one directory in one process behave like two processes (flock belongs to
the open file description), so most cross-holder properties are checked here in-process;
tests/integration/test_state_processes.py repeats them with real processes and SIGKILL.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from extractor.http.limiter import Limiter
from extractor.http.slots import FileSlots


def test_is_a_limiter(tmp_path: Path) -> None:
    with FileSlots(tmp_path / "slots") as slots:
        limiter: Limiter = slots
        assert limiter.in_flight == 0


def test_slot_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "site.sqlite3.slots"
    with FileSlots(directory, 3):
        pass
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["slot-0.lock", "slot-1.lock", "slot-2.lock"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in directory.iterdir())


@pytest.mark.parametrize("bad", [{"slots": 0}, {"poll": 0.0}, {"poll": 0.1, "max_poll": 0.01}])
def test_bad_arguments(tmp_path: Path, bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"slot|poll"):
        FileSlots(tmp_path, **bad)  # type: ignore[arg-type]


async def _hammer(limiters: list[FileSlots], tasks: int, rounds: int) -> int:
    """Run ``tasks`` tasks per limiter, each taking a slot ``rounds`` times; the peak of
    slots held at once over all of them."""
    held = peak = 0

    async def work(limiter: FileSlots, seed: int) -> None:
        nonlocal held, peak
        for i in range(rounds):
            async with limiter.slot():
                held += 1
                peak = max(peak, held)
                await asyncio.sleep(0.0005 * ((seed + i) % 3))
                held -= 1

    await asyncio.gather(*(work(lim, t) for lim in limiters for t in range(tasks)))
    return peak


async def test_one_process_never_holds_more_than_n(tmp_path: Path) -> None:
    with FileSlots(tmp_path, 3) as slots:
        assert await _hammer([slots], tasks=10, rounds=20) == 3
        assert slots.max_in_flight == 3
        assert slots.in_flight == 0


async def test_holders_on_one_directory_share_n_slots(tmp_path: Path) -> None:
    """Three holders (as three processes would be) never hold more than N between them."""
    limiters = [FileSlots(tmp_path, 3, poll=0.0005, max_poll=0.002) for _ in range(3)]
    try:
        assert await _hammer(limiters, tasks=3, rounds=15) == 3
        assert all(lim.in_flight == 0 for lim in limiters)
    finally:
        for lim in limiters:
            lim.close()


async def test_a_slot_held_elsewhere_is_waited_for_then_taken(tmp_path: Path) -> None:
    with FileSlots(tmp_path, 1) as first, FileSlots(tmp_path, 1) as second:
        async with first.slot():
            waiter = asyncio.create_task(_take(second))
            await asyncio.sleep(0.03)
            assert not waiter.done()
        await asyncio.wait_for(waiter, 1)
        assert second.max_in_flight == 1


async def _take(limiter: FileSlots) -> None:
    async with limiter.slot():
        pass


async def test_cancelling_a_waiter_leaves_nothing_held(tmp_path: Path) -> None:
    with FileSlots(tmp_path, 1) as first, FileSlots(tmp_path, 1) as second:
        async with first.slot():
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.02), second.slot():
                    pass
        assert second.in_flight == 0
        async with asyncio.timeout(1), second.slot():  # and first really let go
            assert second.in_flight == 1


async def test_an_exception_inside_releases_the_slot(tmp_path: Path) -> None:
    with FileSlots(tmp_path, 1) as first, FileSlots(tmp_path, 1) as second:
        with pytest.raises(RuntimeError, match="boom"):
            async with first.slot():
                raise RuntimeError("boom")
        async with asyncio.timeout(1), second.slot():
            pass


async def test_closing_releases_and_refuses_new_slots(tmp_path: Path) -> None:
    first = FileSlots(tmp_path, 1)
    second = FileSlots(tmp_path, 1)
    try:
        held = asyncio.Event()

        async def hold() -> None:
            async with first.slot():
                held.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(hold())
        await held.wait()
        first.close()  # e.g. the runner shutting down: the kernel lock goes with the fd
        async with asyncio.timeout(1), second.slot():
            pass
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert first.closed
        with pytest.raises(RuntimeError, match="closed"):
            async with first.slot():
                pass
        first.close()  # idempotent
    finally:
        second.close()
