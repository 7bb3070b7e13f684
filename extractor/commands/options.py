"""Command-line options shared by the commands that talk to a site or its state."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from extractor.config import (
    DEFAULT_DAILY_LIMIT,
    DEFAULT_ENTITIES,
    KEY_ENV,
    MAX_CONCURRENCY,
    MAX_PAGE_SIZE,
)


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


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``30m``, ``2h`` or ``1d`` -> a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    unit = units.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30m, 2h, 1d)") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a duration cannot be negative")
    return timedelta(seconds=value * (unit or 1))


def add_state_arguments(parser: argparse.ArgumentParser) -> None:
    """The state database and the daily budget: shared by extract, plan and status."""
    parser.add_argument(
        "--state",
        type=Path,
        metavar="PATH",
        help="state database (default $XDG_STATE_HOME/twelvetwenty/SITE.sqlite3)",
    )
    parser.add_argument(
        "--max-requests-per-day",
        type=int,
        default=DEFAULT_DAILY_LIMIT,
        metavar="N",
        help=f"the school's daily request limit (default {DEFAULT_DAILY_LIMIT})",
    )
    parser.add_argument(
        "--reserve",
        type=int,
        default=0,
        metavar="N",
        help="requests per day left for the school's other integrations (default 0)",
    )
    parser.add_argument(
        "--budget-window",
        choices=("rolling", "utc-day"),
        default="rolling",
        help="count the limit over any 24 hours (rolling, safe) or per UTC day",
    )


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """What to extract and where: shared by extract and plan (which plans the same job)."""
    parser.add_argument(
        "--out", type=Path, default=Path("lake"), metavar="DIR", help="output directory (./lake)"
    )
    parser.add_argument(
        "--entities",
        metavar="LIST",
        help=f"comma-separated entities (default: all: {','.join(DEFAULT_ENTITIES)})",
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
    parser.add_argument(
        "--full",
        action="store_true",
        help="walk every row (a full dump: marks deletions, refreshes lookup options)",
    )
    parser.add_argument(
        "--details",
        metavar="LIST",
        help="entities whose records also get their detail endpoint (one request per new "
        'or changed record; default: those schemas/ marks "details": true)',
    )
    parser.add_argument(
        "--lookback",
        type=parse_duration,
        default=timedelta(hours=1),
        metavar="DURATION",
        help="incremental runs re-read changes this far before the watermark (default 1h)",
    )
