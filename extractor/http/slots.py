"""At most N requests in flight across every process of a site: N lock files, one flock each.

The API allows 3 requests in flight per school, and two extractor processes (two cron jobs)
on one site must share them. Slot ``i`` is an exclusive ``flock`` on
``<directory>/slot-<i>.lock``; whoever holds the lock holds the slot. Why flock:

- The kernel drops a lock when its holder dies, however it dies (SIGKILL included), so a
  slot can never leak; there is no stale state to clean up and no pid to check.
- Locks belong to the *open file description*: two descriptors on one file conflict even
  inside one process, which is what separates processes. It also means re-locking a
  descriptor this process already holds "succeeds", so the object remembers which slots
  its own tasks hold and never tries those, and an in-process semaphore keeps this
  process's tasks from polling against each other.
- Descriptors are opened ``O_CLOEXEC``: a child process that execs does not inherit (and
  pin) a slot. A plain ``fork`` does share them: do not fork while holding slots.

Waiting for another process's slot polls (non-blocking ``flock`` then a real-time sleep that
grows from ``poll`` to ``max_poll``): a blocking ``flock`` would stall the event loop or
need a thread per waiter. The cost is at most ``max_poll`` of latency per contended slot,
small next to a request's round trip. There is no fairness between processes.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

from extractor.errors import ConfigError


class FileSlots:
    """A :class:`~extractor.http.limiter.Limiter` whose slots hold across processes."""

    def __init__(
        self,
        directory: Path,
        slots: int = 3,
        *,
        poll: float = 0.005,
        max_poll: float = 0.05,
    ) -> None:
        if slots < 1:
            raise ValueError("a limiter needs at least one slot")
        if not 0 < poll <= max_poll:
            raise ValueError("need 0 < poll <= max_poll")
        self.directory = directory
        self.slots = slots
        self._poll = poll
        self._max_poll = max_poll
        self._fds: list[int] = []
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            for i in range(slots):
                path = directory / f"slot-{i}.lock"
                self._fds.append(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot open slot files in {directory}: {exc.strerror}") from exc
        self._sem = asyncio.Semaphore(slots)
        self._held: set[int] = set()
        self.max_in_flight = 0

    @property
    def in_flight(self) -> int:
        """Slots this process holds right now."""
        return len(self._held)

    @property
    def closed(self) -> bool:
        return not self._fds

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot, shared with every other process using ``directory``."""
        async with self._sem:
            index = await self._acquire()
            self._held.add(index)
            self.max_in_flight = max(self.max_in_flight, len(self._held))
            try:
                yield
            finally:
                self._held.discard(index)
                if self._fds:
                    fcntl.flock(self._fds[index], fcntl.LOCK_UN)

    async def _acquire(self) -> int:
        delay = self._poll
        while True:
            index = self._try_lock()
            if index is not None:
                return index
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_poll)

    def _try_lock(self) -> int | None:
        if not self._fds:
            raise RuntimeError("FileSlots is closed")
        for index, fd in enumerate(self._fds):
            if index in self._held:
                continue  # ours already: flock on it would "succeed" again
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            return index
        return None

    def close(self) -> None:
        """Close the slot files (releasing any slot still held). Idempotent."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def __enter__(self) -> FileSlots:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
