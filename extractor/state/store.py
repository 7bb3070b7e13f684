"""What must survive a crash, one SQLite database per site: the request ledger, the cached
token, page checkpoints, watermarks and the history of runs.

Several processes (two cron jobs, ``status`` while an extract runs) may open the same file:
each opens its own connection, every write is one short ``BEGIN IMMEDIATE`` transaction,
and the ledger's read-decide-insert happens inside one, so two processes can never both
take the last unit of the day. The arithmetic is :mod:`extractor.core.budget`'s; this
module only stores its inputs and outputs. See :mod:`extractor.state.db` for the file's
permissions, WAL and durability choices (SIGKILL-safe; power loss out of scope).

A connection belongs to the thread that opened it (the runner's asyncio thread): calls are
a few statements each, short enough to run on the event loop.

Datetimes are stored as ISO text in UTC with microseconds (fixed width, so they sort and
round-trip exactly); naive datetimes are refused (:func:`extractor.core.watermark.ensure_utc`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from extractor.clock import Clock, SystemClock
from extractor.core.budget import BudgetPolicy, Grant, prune_before, try_take
from extractor.core.watermark import ensure_utc
from extractor.errors import ConfigError, redact
from extractor.state.db import connect

STATE_DIR = "twelvetwenty"
STATUS_KEEP = 2 * 86400.0
"""Ledger entries younger than this are always kept, whatever the policy: status shows them."""
WHAT_MAX = 200

# redact() blanks ``?key=``/``&key=``; a label may also carry one bare (``key=...``).
_BARE_SECRET = re.compile(r"(?i)\b((?:api_?)?key|token)=[^&#\s'\"]*")


def default_state_path(site: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/twelvetwenty/<site>.sqlite3``, else ``~/.local/state/...``.

    A relative ``$XDG_STATE_HOME`` is ignored, as the XDG spec says.
    """
    env = os.environ if environ is None else environ
    if not site or site.startswith(".") or "/" in site or "\0" in site or os.sep in site:
        raise ConfigError(f"site {site!r} cannot name a state file")
    base = env.get("XDG_STATE_HOME", "")
    if not base or not os.path.isabs(base):
        home = env.get("HOME") or str(Path.home())
        base = os.path.join(home, ".local", "state")
    return Path(base) / STATE_DIR / f"{site}.sqlite3"


def _text(value: datetime) -> str:
    return ensure_utc(value).isoformat(timespec="microseconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _clean_what(what: str) -> str:
    return _BARE_SECRET.sub(r"\1=***", redact(what))[:WHAT_MAX]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


@dataclass(frozen=True)
class CheckpointRow:
    """One entity's page checkpoint within a scope (an output directory)."""

    scope: str
    entity: str
    updated_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class WatermarkRow:
    scope: str
    entity: str
    value: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RunRow:
    """One run as recorded. ``status`` is what :meth:`StateStore.finish_run` wrote, or
    ``"running"``, or ``"abandoned"`` for a run still marked running whose process (on this
    host) no longer exists."""

    run_id: str
    started_at: datetime
    command: str
    scope: str
    status: str
    finished_at: datetime | None
    summary: dict[str, Any] | None
    pid: int
    host: str


class StateStore:
    """The per-site state database. Open with :meth:`open`; close (or use ``with``)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock
        self._host = socket.gethostname()

    @classmethod
    def open(cls, path: Path, *, clock: Clock | None = None) -> StateStore:
        """Open (creating, tightening and migrating as needed) the database at ``path``.
        ``clock`` stamps ``updated_at`` columns. ``ConfigError`` if the file is unusable."""
        return cls(connect(path), path, clock or SystemClock())

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._conn
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"state database {self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is
        read, so a read-decide-write inside it cannot race another process."""
        with self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- ledger ---------------------------------------------------------------------------

    def charge(self, now: float, policy: BudgetPolicy, what: str, n: int = 1) -> Grant:
        """Take ``n`` units of the budget at ``now`` (POSIX seconds) if the ledger allows,
        recording them atomically; otherwise record nothing and say when they free.
        ``what`` labels the entries (redacted again here: it must never hold a key)."""
        label = _clean_what(what)
        with self._write() as conn:
            rows = conn.execute(
                "SELECT at FROM ledger WHERE at >= ? ORDER BY at", (prune_before(now, policy),)
            ).fetchall()
            grant = try_take([at for (at,) in rows], now, policy, n)
            if grant.granted:
                conn.executemany("INSERT INTO ledger (at, what) VALUES (?, ?)", [(now, label)] * n)
        return grant

    def ledger_times(self, now: float, policy: BudgetPolicy) -> list[float]:
        """Sorted charge times that can still matter at ``now`` (feed them to core.budget)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT at FROM ledger WHERE at >= ? ORDER BY at", (prune_before(now, policy),)
            ).fetchall()
        return [float(at) for (at,) in rows]

    def ledger_entries(self, since: float) -> list[tuple[float, str]]:
        """``(at, what)`` for entries charged at or after ``since``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT at, what FROM ledger WHERE at >= ? ORDER BY at, id", (since,)
            ).fetchall()
        return [(float(at), str(what)) for at, what in rows]

    def prune(self, now: float, policy: BudgetPolicy) -> int:
        """Delete entries that can no longer count (core.budget.prune_before), keeping at
        least the last 48 hours for ``status``; returns how many were deleted. ``charge``
        never prunes: the runner calls this once per run."""
        cutoff = min(prune_before(now, policy), now - STATUS_KEEP)
        with self._write() as conn:
            return conn.execute("DELETE FROM ledger WHERE at < ?", (cutoff,)).rowcount

    # -- token ----------------------------------------------------------------------------

    def load_token(self) -> tuple[str, datetime] | None:
        """The cached bearer token and when it was issued (aware UTC), if any."""
        with self._read() as conn:
            row = conn.execute("SELECT value, issued_at FROM token WHERE id = 1").fetchone()
        return None if row is None else (str(row[0]), _time(row[1]))

    def save_token(self, value: str, issued_at: datetime) -> None:
        """Replace the cached token (never the API key: only what the key bought)."""
        issued = _text(issued_at)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO token (id, value, issued_at) VALUES (1, ?, ?) ON CONFLICT (id)"
                " DO UPDATE SET value = excluded.value, issued_at = excluded.issued_at",
                (value, issued),
            )

    def clear_token(self) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM token")

    # -- checkpoints ----------------------------------------------------------------------

    def load_checkpoint(self, scope: str, entity: str) -> dict[str, Any] | None:
        """The checkpoint saved for ``(scope, entity)``, or None."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT data FROM checkpoints WHERE scope = ? AND entity = ?", (scope, entity)
            ).fetchone()
        return None if row is None else self._json_object(row[0], f"checkpoint {entity}")

    def save_checkpoint(self, scope: str, entity: str, data: dict[str, Any]) -> None:
        """Insert or replace the checkpoint (strict JSON: ``ValueError``/``TypeError`` for
        anything that would not load back identically)."""
        text = json.dumps(data, allow_nan=False, separators=(",", ":"))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO checkpoints (scope, entity, data, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (scope, entity)"
                " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (scope, entity, text, _text(self._clock.now())),
            )

    def delete_checkpoint(self, scope: str, entity: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM checkpoints WHERE scope = ? AND entity = ?", (scope, entity))

    def list_checkpoints(self) -> list[CheckpointRow]:
        """Every checkpoint, by scope then entity (for ``status``)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT scope, entity, updated_at, data FROM checkpoints ORDER BY scope, entity"
            ).fetchall()
        return [
            CheckpointRow(scope, entity, _time(updated), self._json_object(data, entity))
            for scope, entity, updated, data in rows
        ]

    def _json_object(self, text: str, what: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ConfigError(f"state database {self.path}: {what} is not a JSON object")
        return value

    # -- watermarks -----------------------------------------------------------------------

    def get_watermark(self, scope: str, entity: str) -> datetime | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT value FROM watermarks WHERE scope = ? AND entity = ?", (scope, entity)
            ).fetchone()
        return None if row is None else _time(row[0])

    def set_watermark(self, scope: str, entity: str, value: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO watermarks (scope, entity, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (scope, entity)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (scope, entity, _text(value), _text(self._clock.now())),
            )

    def list_watermarks(self) -> list[WatermarkRow]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT scope, entity, value, updated_at FROM watermarks ORDER BY scope, entity"
            ).fetchall()
        return [WatermarkRow(s, e, _time(v), _time(u)) for s, e, v, u in rows]

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, run_id: str, started_at: datetime, command: str, scope: str) -> None:
        """Record a run as ``running``, with this process's pid and host so that
        :meth:`recent_runs` can tell a live run from one whose process died."""
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO runs (run_id, started_at, command, scope, pid, host, status)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'running')",
                    (run_id, _text(started_at), redact(command), scope, os.getpid(), self._host),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"run {run_id!r} is already recorded") from None

    def finish_run(
        self, run_id: str, finished_at: datetime, status: str, summary: dict[str, Any]
    ) -> None:
        """Record how a run ended (``summary`` is JSON; odd values are stringified)."""
        text = json.dumps(summary, default=str, separators=(",", ":"))
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE run_id = ?",
                (_text(finished_at), status, text, run_id),
            ).rowcount
        if not updated:
            raise ValueError(f"run {run_id!r} was never started")

    def recent_runs(self, limit: int = 10) -> list[RunRow]:
        """The last ``limit`` runs, newest first.

        A run still marked ``running`` is reported ``abandoned`` when it was started on this
        host by a pid that no longer exists (killed, crashed). Read-only: nothing is
        rewritten. A recycled pid can make a dead run look ``running`` (never the reverse);
        runs of other hosts are reported as recorded.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT run_id, started_at, command, scope, status, finished_at, summary, pid,"
                " host FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        out: list[RunRow] = []
        for run_id, started, command, scope, status, finished, summary, pid, host in rows:
            if status == "running" and host == self._host and not _pid_alive(pid):
                status = "abandoned"
            out.append(
                RunRow(
                    run_id, _time(started), command, scope, status,
                    None if finished is None else _time(finished),
                    None if summary is None else self._json_object(summary, f"run {run_id}"),
                    int(pid), str(host),
                )
            )  # fmt: skip
        return out
