"""The ``twelvetwenty`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this module only dispatches and turns errors into one clear line on
stderr and an exit status (0 complete, 1 failure, 2 usage/configuration, 3 budget spent).
A traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import Protocol, cast

from extractor.errors import EXIT_FAILURE, EXIT_USAGE, ExtractorError, redact


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module, one-line help). Modules are imported only when needed.
COMMANDS: dict[str, tuple[str, str]] = {
    "extract": ("extractor.commands.extract", "extract entities from 12Twenty into Parquet"),
    "plan": ("extractor.commands.plan", "size the job: requests left, days of budget, ETA"),
    "status": ("extractor.commands.status", "budget, token, checkpoints and runs (no request)"),
    "schemas": (
        "extractor.commands.schemas",
        "schemas diff: what the API sends that schemas/ lacks",
    ),
    "simulate": ("extractor.simulator.cli", "serve an offline 12Twenty API for tests and demos"),
}


def _load(name: str) -> _Command:
    return cast(_Command, importlib.import_module(COMMANDS[name][0]))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of command ``only`` (None: of no command, enough for
    ``twelvetwenty --help``). Importing only that command's module keeps start-up fast and
    keeps one command's imports from breaking another."""
    parser = argparse.ArgumentParser(
        prog="twelvetwenty",
        description="Extract a school's 12Twenty data into Parquet, within the API's limits.",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        cmd_parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print a traceback on errors",
        )
        if only == name:
            _load(name).add_arguments(cmd_parser)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(args_list))
    args = parser.parse_args(args_list)
    debug = bool(getattr(args, "debug", False))
    try:
        return _load(args.command).run(args)
    except KeyboardInterrupt:
        print("twelvetwenty: interrupted", file=sys.stderr)
        return 130
    except ExtractorError as exc:
        if debug:
            traceback.print_exc()
        print(f"twelvetwenty: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_status
    except Exception as exc:  # the last line of defence: one clear line, not a traceback
        if debug:
            traceback.print_exc()
        detail = redact(f"{type(exc).__name__}: {exc}")
        print(
            f"twelvetwenty: unexpected error: {detail} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


__all__ = ["EXIT_USAGE", "main"]
