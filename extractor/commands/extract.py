"""``twelvetwenty extract``: a full dump of every entity into Parquet."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import sys
from datetime import timedelta
from typing import TextIO

import pyarrow as pa

from extractor.commands.options import (
    add_job_arguments,
    add_site_arguments,
    add_state_arguments,
)
from extractor.config import (
    DEFAULT_ENTITIES,
    Settings,
    parse_entities,
    read_api_key,
    resolve_base_url,
)
from extractor.durable import durable_extraction
from extractor.errors import (
    EXIT_BUDGET,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BudgetExhausted,
    ConfigError,
    ExtractorError,
    redact,
)
from extractor.manifest import manifest_dict, write_manifest
from extractor.progress import Progress
from extractor.records.schema import load_schemas
from extractor.results import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_site_arguments(parser)
    add_job_arguments(parser)
    add_state_arguments(parser)
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when the budget is spent, sleep until it frees and carry on (default: stop, exit 3)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "text", "json"),
        default="auto",
        help="progress on stderr: live on a terminal, lines otherwise (auto), or JSON lines",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    base_url = resolve_base_url(args.site, sandbox=args.sandbox, base_url=args.base_url)
    return Settings(
        site=args.site,
        base_url=base_url,
        api_key=read_api_key(args.key_file),
        out_dir=args.out,
        entities=parse_entities(args.entities),
        concurrency=args.concurrency,
        page_size=args.page_size,
        full=getattr(args, "full", False),
        state_path=args.state,
        max_requests_per_day=args.max_requests_per_day,
        reserve=args.reserve,
        budget_window=args.budget_window,
        wait=getattr(args, "wait", False),
        lookback=getattr(args, "lookback", timedelta(hours=1)),
        details=details_from_args(getattr(args, "details", None)),
    )


def details_from_args(text: str | None) -> tuple[str, ...]:
    """``--details``, or the entities schemas/ marks for detail enrichment."""
    if text is not None:
        return parse_entities(text) if text.strip() else ()
    schemas = load_schemas()
    return tuple(name for name in DEFAULT_ENTITIES if schemas[name].details)


def print_summary(result: RunResult, stream: TextIO) -> None:
    """The end-of-run table: what was pulled, what it did to each snapshot, problems."""
    header = (
        f"{'entity':<16}{'pulled':>9}{'pages':>7}{'requests':>10}{'new':>7}{'updated':>9}"
        f"{'deleted':>9}{'snapshot':>10}{'problems':>10}  status"
    )
    lines = [header, "-" * len(header)]
    for name, e in result.entities.items():
        problems = sum(e.problems.values())
        snapshot = "-" if e.snapshot_rows is None else str(e.snapshot_rows)
        lines.append(
            f"{name:<16}{e.rows:>9}{e.pages:>7}{e.requests:>10}{e.inserted:>7}{e.updated:>9}"
            f"{e.deleted:>9}{snapshot:>10}{problems:>10}  {e.status}"
        )
    total_problems = sum(sum(e.problems.values()) for e in result.entities.values())
    lines.append("")
    recovered = sum(e.recovered for e in result.entities.values())
    minimum = (
        f" (minimum possible {result.minimum_requests})"
        if result.complete and not result.resumed
        else ""
    )
    lines.append(
        f"requests used {result.requests}{minimum}, "
        f"elapsed {result.elapsed:.1f}s, data problems {total_problems}"
        + (f", resumed job {result.job_id}" if result.resumed else "")
        + (f", {recovered} bodies replayed from the spool" if recovered else "")
    )
    for name, e in result.entities.items():
        for what, count in e.problems.items():
            lines.append(f"  {name}: {what} x{count}")
        if e.unknown_fields:
            lines.append(f"  {name}: fields not in schemas/ (kept): {', '.join(e.unknown_fields)}")
    stream.write("\n".join(lines) + "\n")


def _stop_note(result: RunResult) -> str | None:
    """What a user needs after a run that did not finish: what is left, when to rerun."""
    left = [
        f"{name} {e.remaining if e.remaining is not None else '?'}"
        for name, e in result.entities.items()
        if e.status != "complete"
    ]
    if not left:
        return None
    lines = [f"left for the next run (requests): {', '.join(left)}"]
    error = result.error
    if isinstance(error, BudgetExhausted):
        lines.insert(0, f"stopped: {error}")
        lines.append("rerun the same command then to resume (or add --wait to sleep until then)")
    elif result.interrupted:
        lines.insert(0, "stopped: interrupted; everything fetched is kept")
        lines.append("rerun the same command to resume")
    return "\n".join(lines)


async def _extract(settings: Settings, progress: Progress, command: str) -> RunResult:
    with durable_extraction(settings, progress=progress) as (extraction, store):
        loop = asyncio.get_running_loop()

        # First Ctrl-C: stop sending, finish writing, commit. A second one is the usual
        # KeyboardInterrupt (the handler is removed once it fired).
        def on_sigint() -> None:
            loop.remove_signal_handler(signal.SIGINT)
            extraction.interrupt()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        loop.add_signal_handler(signal.SIGTERM, extraction.interrupt)
        extraction.prepare()
        store.start_run(extraction.run_id, extraction.started_at, command, extraction.scope)
        try:
            result = await extraction.run()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
        status = (
            "complete" if result.complete
            else "interrupted" if result.interrupted
            else "budget" if isinstance(result.error, BudgetExhausted)
            else "failed"
        )  # fmt: skip
        summary = {
            "requests": result.requests,
            "entities": {n: e.status for n, e in result.entities.items()},
            "error": redact(str(result.error)) if result.error else None,
        }
        store.finish_run(result.run_id, result.finished_at, status, summary)
        return result


def _limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own malloc arena, and conversions run on
    worker threads: the arenas' free memory added ~50 MB of resident memory in
    benchmarks/bench_memory.py. Two arenas are plenty (the work is one event loop and a
    few converters). No-op where glibc's mallopt is not available."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        settings.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {settings.out_dir}: {exc.strerror}") from None
    # Arrow's default mimalloc pool keeps freed pages: streaming a million rows through
    # it peaked ~100 MB higher than the system allocator (benchmarks/bench_memory.py).
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:  # the user's choice wins
        pa.set_memory_pool(pa.system_memory_pool())
        _limit_malloc_arenas()
    progress = Progress(log_format=args.log_format)
    result = asyncio.run(_extract(settings, progress, "extract"))
    doc = manifest_dict(result, site=settings.site, base_url=settings.base_url)
    path = write_manifest(settings.out_dir, doc)
    print_summary(result, sys.stdout)
    print(f"manifest: {path}")
    note = _stop_note(result)
    if note:
        print(note, file=sys.stderr)
    if result.interrupted:
        return EXIT_INTERRUPTED
    if isinstance(result.error, BudgetExhausted):
        return EXIT_BUDGET  # the note above said why, what is left and when to rerun
    if result.error is not None:
        raise result.error
    return EXIT_OK if result.complete else EXIT_FAILURE


__all__ = ["ExtractorError", "add_arguments", "run"]
