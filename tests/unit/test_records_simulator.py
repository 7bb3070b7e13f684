"""What the simulator serves converts cleanly, on the fast path, to its ground truth."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from extractor.records.convert import Converter
from extractor.records.schema import ListOf, MapOf, Scalar, StructOf, TypeNode, load_schemas
from extractor.simulator.data import ListFilter, SchoolData
from extractor.simulator.entities import LIST_ENTITIES

SCHEMAS = load_schemas()
_DT = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?Z?")


@pytest.fixture(scope="module")
def school() -> SchoolData:
    rows = {e.name: 650 for e in LIST_ENTITIES} | {"lookups": 30, "attributes": 40}
    return SchoolData(seed=7, rows=rows, now=datetime(2026, 6, 1, tzinfo=UTC))


def expected(value: Any, node: TypeNode) -> Any:
    """What Arrow should hold for a JSON value, computed without pyarrow."""
    if value is None:
        return None
    if isinstance(node, Scalar):
        if node.name != "DateTime":
            return value
        m = _DT.fullmatch(value)
        assert m is not None, value
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        micros = int((m.group(7) or "")[:6].ljust(6, "0"))
        return datetime(y, mo, d, h, mi, s, micros, tzinfo=UTC)
    if isinstance(node, ListOf):
        return [expected(v, node.item) for v in value]
    if isinstance(node, StructOf):
        return {name: expected(value.get(name), t) for name, t in node.fields}
    assert isinstance(node, MapOf)
    return list(value.items())


@pytest.mark.parametrize("entity", [e.name for e in LIST_ENTITIES])
def test_list_pages_take_the_fast_path_and_equal_the_ground_truth(
    school: SchoolData, entity: str
) -> None:
    schema = SCHEMAS[entity]
    total = school.count(entity)
    pages = [school.list_page(entity, p, 500, ListFilter()) for p in range(1, total // 500 + 2)]
    converted = Converter(schema).convert_pages(pages)
    assert converted.path == "fast", converted.fallback_reason
    assert len(converted.problems) == 0
    assert [m.items for m in converted.pages] == [
        min(500, total - 500 * k) for k in range(len(pages))
    ]
    truth = [
        {f.name: expected(row.get(f.name), f.node) for f in schema.list_fields} | {"_raw": None}
        for row in school.ground_truth_list(entity)
    ]
    assert converted.record_batch.to_pylist() == truth


@pytest.mark.parametrize("entity", [e.name for e in LIST_ENTITIES])
def test_detail_rows_convert_every_field_cleanly(school: SchoolData, entity: str) -> None:
    schema = SCHEMAS[entity]
    ids = school.ids(entity)[:40]
    bodies = [school.detail(entity, i) for i in ids]
    converted = Converter(schema, detail=True).convert_objects([b for b in bodies if b])
    assert len(converted.problems) == 0
    truth = [
        {f.name: expected(row.get(f.name), f.node) for f in schema.fields} | {"_raw": None}
        for row in list(school.ground_truth(entity))[:40]
    ]
    assert converted.record_batch.to_pylist() == truth


def test_lookup_options_convert_cleanly(school: SchoolData) -> None:
    lookup = school.ids("lookups")[0]
    body = school.lookup_options(lookup)
    assert body is not None
    converted = Converter(SCHEMAS["lookup-options"]).convert_array(body)
    assert converted.num_rows >= 2 and len(converted.problems) == 0
