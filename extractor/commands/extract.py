"""``twelvetwenty extract``: a full dump of every entity into Parquet."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from extractor.config import (
    DEFAULT_ENTITIES,
    KEY_ENV,
    MAX_CONCURRENCY,
    MAX_PAGE_SIZE,
    Settings,
    parse_entities,
    read_api_key,
    resolve_base_url,
)
from extractor.errors import EXIT_FAILURE, EXIT_OK, ConfigError, ExtractorError
from extractor.manifest import manifest_dict, write_manifest
from extractor.progress import Progress
from extractor.run import Extraction, RunResult


def add_site_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the API is and how to authenticate: shared by every command that calls it."""
    parser.add_argument("--site", required=True, help="the school's 12Twenty subdomain")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true", help="use SITE.admin.sandbox-12twenty.com")
    where.add_argument(
        "--base-url",
        metavar="URL",
        help="an explicit API origin, e.g. a simulator (http only for loopback hosts)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help=f"read the API key from PATH (default: ${KEY_ENV}); never pass it as an argument",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_site_arguments(parser)
    parser.add_argument(
        "--out", type=Path, default=Path("lake"), metavar="DIR", help="output directory (./lake)"
    )
    parser.add_argument(
        "--entities",
        metavar="LIST",
        help=f"comma-separated entities (default: all: {','.join(DEFAULT_ENTITIES)})",
    )
    parser.add_argument(
        "--state", type=Path, metavar="PATH", help="state database (used by resumable runs)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=MAX_CONCURRENCY,
        metavar="N",
        help=f"requests in flight, 1 to {MAX_CONCURRENCY} (default {MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=MAX_PAGE_SIZE,
        metavar="N",
        help=f"items per page, 1 to {MAX_PAGE_SIZE} (default {MAX_PAGE_SIZE}: fewest requests)",
    )
    parser.add_argument("--full", action="store_true", help="walk every row (a full dump)")
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
        full=args.full,
    )


def print_summary(result: RunResult, stream: TextIO) -> None:
    """The end-of-run table: rows per entity, requests against the minimum, problems."""
    header = f"{'entity':<16}{'rows':>10}{'pages':>8}{'requests':>10}{'files':>7}{'problems':>10}  status"
    lines = [header, "-" * len(header)]
    for name, e in result.entities.items():
        problems = sum(e.problems.values())
        lines.append(
            f"{name:<16}{e.rows:>10}{e.pages:>8}{e.requests:>10}{len(e.files):>7}{problems:>10}  {e.status}"
        )
    total_problems = sum(sum(e.problems.values()) for e in result.entities.values())
    lines.append("")
    lines.append(
        f"requests used {result.requests} (minimum possible {result.minimum_requests}), "
        f"elapsed {result.elapsed:.1f}s, data problems {total_problems}"
    )
    for name, e in result.entities.items():
        for what, count in e.problems.items():
            lines.append(f"  {name}: {what} x{count}")
        if e.unknown_fields:
            lines.append(f"  {name}: fields not in schemas/ (kept): {', '.join(e.unknown_fields)}")
    stream.write("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        settings.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {settings.out_dir}: {exc.strerror}") from None
    # Arrow's default mimalloc pool keeps freed pages: streaming a million rows through
    # it peaked ~100 MB higher than the system allocator (benchmarks/bench_memory.py).
    pa.set_memory_pool(pa.system_memory_pool())
    progress = Progress(log_format=args.log_format)
    result = asyncio.run(Extraction(settings, progress=progress).run())
    doc = manifest_dict(result, site=settings.site, base_url=settings.base_url)
    path = write_manifest(settings.out_dir, doc)
    print_summary(result, sys.stdout)
    print(f"manifest: {path}")
    if result.error is not None:
        raise result.error
    return EXIT_OK if result.complete else EXIT_FAILURE


__all__ = ["ExtractorError", "add_arguments", "run"]
