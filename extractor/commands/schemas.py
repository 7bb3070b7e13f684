"""``twelvetwenty schemas diff``: what the live API sends that schemas/ does not declare.

One request per entity (its first page of up to 500 rows, under the shared budget). Each
page goes through the extractor's own converter, so the report is exactly what an
extraction would report: fields the schema lacks, values that do not fit their declared
type, detail-only fields that the list carries, and declared list fields never sent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

import orjson

from extractor.commands.extract import settings_from_args
from extractor.commands.options import add_site_arguments, add_state_arguments
from extractor.config import DEFAULT_ENTITIES
from extractor.durable import durable_client
from extractor.errors import EXIT_OK
from extractor.records.convert import Converter
from extractor.records.schema import load_schemas

KINDS = {
    "unknown_field": "not in schemas/ (kept as a raw JSON column)",
    "bad_value": "does not fit its declared type (raw value kept in _raw)",
    "unlisted_field": "declared detail-only, but the list sends it",
    "case_variant": "sent with another letter case",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=("diff",), help="diff: compare the live API with schemas/"
    )
    add_site_arguments(parser)
    parser.add_argument(
        "--entities",
        metavar="LIST",
        help=f"comma-separated entities (default: all: {','.join(DEFAULT_ENTITIES)})",
    )
    parser.add_argument("--out", type=Path, default=Path("lake"), help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--page-size", type=int, default=500, help=argparse.SUPPRESS)
    add_state_arguments(parser)


def diff_lines(entity: str, body: bytes) -> list[str]:
    """The differences one page shows between the API and ``schemas/<entity>.json``."""
    schema = load_schemas()[entity]
    converted = Converter(schema, fast=False).convert_pages([body])
    lines = []
    for problem in converted.problems:
        what = KINDS.get(problem.kind, problem.kind)
        lines.append(f"  {problem.field}: {what}; {problem.count} row(s), e.g. {problem.example}")
    items = orjson.loads(body).get("Items") or []
    sent = {key for item in items if isinstance(item, dict) for key in item}
    missing = [f.name for f in schema.list_fields if items and f.name not in sent]
    if missing:
        lines.append(f"  declared list fields not sent: {', '.join(missing)}")
    return lines


async def _diff(args: argparse.Namespace, stream: TextIO) -> int:
    settings = settings_from_args(args)
    schemas = load_schemas()
    async with durable_client(settings) as (client, budget):
        differences = 0
        for entity in settings.entities:
            schema = schemas[entity]
            body = await client.get(schema.path, {"PageSize": 500, "PageNumber": 1})
            lines = diff_lines(entity, body)
            differences += len(lines)
            stream.write(f"{entity}: {'matches schemas/' if not lines else 'differs'}\n")
            stream.writelines(line + "\n" for line in lines)
        stream.write(
            f"\n{differences} difference(s); {budget.sent} request(s) spent "
            "(one page per entity, plus a token if none was cached)\n"
        )
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_diff(args, sys.stdout))
