"""Helpers for the records tests: small schemas, pages, and both conversion paths."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from extractor.records.convert import ConvertedBatch, Converter
from extractor.records.schema import EntitySchema, parse_schema

# One field of every type in the grammar, all carried by lists.
EVERY_TYPE: dict[str, Any] = {
    "Id": "Int64",
    "Small": "Int16",
    "Year": "Byte",
    "Count": "Int32",
    "Name": "String",
    "Flag": "Boolean",
    "When": "DateTime",
    "Program": "Lookup",
    "Groups": "IdName[]",
    "Owner": "IdObject",
    "CampaignIds": "Int64[]",
    "Dates": "DateTime[]",
    "Location": {"City": "String", "Zip": "String", "Since": "DateTime"},
    "Addresses": [{"TypeId": "Int32", "Street": "String"}],
}


def make_schema(
    fields: dict[str, Any], *, detail_only: tuple[str, ...] = (), entity: str = "things"
) -> EntitySchema:
    """An EntitySchema from ``name -> type``; ``detail_only`` fields are not in lists."""
    return parse_schema(
        {
            "entity": entity,
            "path": f"/api/v2/{entity}",
            "modify_filter": True,
            "details": False,
            "fields": {
                name: {"type": spec, "list": name not in detail_only}
                for name, spec in fields.items()
            },
        },
        "test",
    )


def page(items: list[Any], number: int = 1, size: int = 500, total: int | None = None) -> bytes:
    """A paged envelope around ``items``, as the API serialises it."""
    return orjson.dumps(
        {
            "PageSize": size,
            "PageNumber": number,
            "Total": len(items) if total is None else total,
            "NumberOfPages": 1,
            "Items": items,
        }
    )


def both(schema: EntitySchema, pages: list[bytes]) -> tuple[ConvertedBatch, ConvertedBatch]:
    """The same pages through the default converter and the forced careful path."""
    return Converter(schema).convert_pages(pages), Converter(schema, fast=False).convert_pages(
        pages
    )


def rows(batch: ConvertedBatch) -> list[dict[str, Any]]:
    return list(batch.record_batch.to_pylist())


def raw_of(batch: ConvertedBatch, row: int) -> dict[str, str] | None:
    """The ``_raw`` cell of a row as a dict (None when the row is clean)."""
    cell = batch.record_batch.column("_raw")[row].as_py()
    return None if cell is None else dict(cell)


def column(batch: ConvertedBatch, name: str) -> list[Any]:
    return list(batch.record_batch.column(name).to_pylist())


def assert_same(a: ConvertedBatch, b: ConvertedBatch) -> None:
    """Identical record batches (schema, values, nulls) and envelopes."""
    assert a.record_batch.schema == b.record_batch.schema
    for name in a.record_batch.schema.names:
        left, right = a.record_batch.column(name), b.record_batch.column(name)
        assert left.equals(right), (name, left.to_pylist()[:5], right.to_pylist()[:5])
    assert a.pages == b.pages


TS_UTC = pa.timestamp("us", tz="UTC")
