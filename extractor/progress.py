"""Progress of a long extraction, for a person at a terminal, a log file, or cron.

Three renderings of the same counters: a live multi-line display on a TTY (redrawn in
place at most a few times a second), a plain line every ``interval`` seconds otherwise,
and JSON lines (``--log-format json``) for machines. All go to stderr so that stdout holds
only the final summary.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal, TextIO

import orjson

LogFormat = Literal["auto", "text", "json"]


@dataclass
class EntityProgress:
    """Counters of one entity's walk."""

    name: str
    pages_total: int | None = None  # unknown until the first page arrives
    pages_done: int = 0
    rows: int = 0
    problems: int = 0
    state: str = "waiting"  # waiting, walking, writing, done, failed, stopped


@dataclass
class Progress:
    """Collects counters and renders them; time comes from the caller (``now`` seconds)."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    log_format: LogFormat = "auto"
    interval: float = 10.0
    live_interval: float = 0.25
    entities: dict[str, EntityProgress] = field(default_factory=dict)
    requests: int = 0
    started: float = 0.0
    _last_render: float = -1e9
    _lines_drawn: int = 0

    @property
    def live(self) -> bool:
        return self.log_format == "auto" and self.stream.isatty()

    def entity(self, name: str) -> EntityProgress:
        if name not in self.entities:
            self.entities[name] = EntityProgress(name)
        return self.entities[name]

    def eta_seconds(self, now: float) -> float | None:
        """Seconds left at the current page rate, once every total is known."""
        totals = [e.pages_total for e in self.entities.values()]
        if not totals or any(t is None for t in totals):
            return None
        total = sum(t or 0 for t in totals)
        done = sum(e.pages_done for e in self.entities.values())
        elapsed = now - self.started
        if done == 0 or elapsed <= 0:
            return None
        return max(0.0, (total - done) * elapsed / done)

    def event(self, now: float, kind: str, **fields: object) -> None:
        """A notable event: logged as a line (text/json), folded into the display (live)."""
        if self.live:
            self.tick(now, force=True)
            return
        if self.log_format == "json":
            record = {"event": kind, "elapsed": round(now - self.started, 3), **fields}
            self.stream.write(orjson.dumps(record, default=str).decode() + "\n")
        else:
            detail = " ".join(f"{k}={v}" for k, v in fields.items())
            self.stream.write(f"[{_clock(now - self.started)}] {kind} {detail}".rstrip() + "\n")
        self.stream.flush()

    def tick(self, now: float, *, force: bool = False) -> None:
        """Render if enough time has passed since the last rendering."""
        gap = self.live_interval if self.live else self.interval
        if not force and now - self._last_render < gap:
            return
        self._last_render = now
        if self.live:
            self._draw(now)
        elif self.log_format == "json":
            self.event(now, "progress", **self._snapshot(now))
        else:
            done = sum(e.pages_done for e in self.entities.values())
            total = sum(e.pages_total or 0 for e in self.entities.values())
            eta = self.eta_seconds(now)
            eta_text = _clock(eta) if eta is not None else "?"
            self.stream.write(
                f"[{_clock(now - self.started)}] pages {done}/{total} "
                f"requests {self.requests} eta {eta_text}\n"
            )
            self.stream.flush()

    def _snapshot(self, now: float) -> dict[str, object]:
        return {
            "requests": self.requests,
            "eta_seconds": self.eta_seconds(now),
            "entities": {
                e.name: {"pages_done": e.pages_done, "pages_total": e.pages_total, "rows": e.rows}
                for e in self.entities.values()
            },
        }

    def _draw(self, now: float) -> None:
        lines = []
        for e in self.entities.values():
            total = e.pages_total
            frac = (e.pages_done / total) if total else 0.0
            bar = "#" * int(frac * 20)
            lines.append(
                f"  {e.name:<14} [{bar:<20}] {e.pages_done:>6}/{total if total is not None else '?':<6}"
                f" pages {e.rows:>9} rows  {e.state}"
            )
        eta = self.eta_seconds(now)
        lines.append(
            f"  requests {self.requests}   elapsed {_clock(now - self.started)}"
            f"   eta {_clock(eta) if eta is not None else '?'}"
        )
        up = f"\x1b[{self._lines_drawn}F" if self._lines_drawn else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self._lines_drawn = len(lines)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"
