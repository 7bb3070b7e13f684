"""Progress rendering: a live display on a terminal, plain lines or JSON lines otherwise."""

from __future__ import annotations

import io

import orjson

from extractor.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fill(progress: Progress) -> None:
    students = progress.entity("students")
    students.pages_total, students.pages_done, students.rows = 24, 12, 6000
    notes = progress.entity("notes")
    notes.pages_total, notes.pages_done = 30, 0
    progress.requests = 13


def test_plain_lines_carry_pages_requests_and_an_eta() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, log_format="auto", interval=10.0)
    _fill(progress)
    progress.tick(5.0)
    progress.tick(6.0)  # within the interval: nothing more
    lines = out.getvalue().splitlines()
    assert lines == ["[0:00:05] pages 12/54 requests 13 eta 0:00:17"]


def test_json_lines_for_cron() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, log_format="json", interval=0.0)
    _fill(progress)
    progress.event(2.0, "entity-done", entity="students", rows=12000)
    progress.tick(3.0)
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert records[0] == {
        "event": "entity-done",
        "elapsed": 2.0,
        "entity": "students",
        "rows": 12000,
    }
    assert records[1]["event"] == "progress"
    assert records[1]["entities"]["students"] == {"pages_done": 12, "pages_total": 24, "rows": 6000}


def test_a_terminal_gets_a_live_display_redrawn_in_place() -> None:
    out = _Terminal()
    progress = Progress(stream=out, log_format="auto")
    _fill(progress)
    progress.tick(1.0)
    first = out.getvalue()
    assert "students" in first and "12/24" in first and "\x1b[2K" in first
    progress.tick(2.0)
    assert out.getvalue()[len(first) :].startswith("\x1b[3F"), "moves up over its 3 lines"
