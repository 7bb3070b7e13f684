"""schemas/*.json: they agree with what the API serves, load, validate, and map to Arrow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from extractor.errors import ConfigError, SchemaError
from extractor.records import schema as S
from extractor.simulator import entities

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
LOOKUP = pa.struct([("Id", pa.int64()), ("AttributeId", pa.int64()), ("Name", pa.string())])


def test_schemas_declare_exactly_what_the_api_serves() -> None:
    """The drift guard: field names, order, types and list flags match entities.py."""
    loaded = S.load_schemas(REPO_SCHEMAS)
    expected = {e.name: e for e in entities.LIST_ENTITIES}
    assert set(loaded) == set(expected) | {"lookup-options"}
    for name, entity in expected.items():
        schema = loaded[name]
        assert schema.path == f"/api/v2/{name}"
        assert schema.modify_filter == entity.has_modify_date, name
        assert schema.paged
        declared = [(f.name, f.spec, f.in_list) for f in schema.fields]
        served = [(f.name, f.type, f.in_list) for f in entity.fields]
        assert declared == served, name
    options = loaded["lookup-options"]
    assert options.path == "/api/v2/lookups/{id}/options"
    assert not options.paged and not options.modify_filter
    assert [(f.name, f.spec) for f in options.fields] == [
        (f.name, f.type) for f in entities.OPTION_FIELDS
    ]


def test_every_schema_is_off_for_details_by_default() -> None:
    assert not any(s.details for s in S.load_schemas(REPO_SCHEMAS).values())


@pytest.mark.parametrize(
    ("spec", "arrow"),
    [
        ("Byte", pa.int16()),
        ("Int16", pa.int16()),
        ("Int32", pa.int32()),
        ("Int64", pa.int64()),
        ("String", pa.string()),
        ("Boolean", pa.bool_()),
        ("DateTime", pa.timestamp("us", tz="UTC")),
        ("Int64[]", pa.list_(pa.int64())),
        ("DateTime[]", pa.list_(pa.timestamp("us", tz="UTC"))),
        ("String[][]", pa.list_(pa.list_(pa.string()))),
        ("Lookup", LOOKUP),
        ("IdName", pa.struct([("Id", pa.int64()), ("Name", pa.string())])),
        ("IdObject", pa.struct([("Id", pa.int64())])),
        ("IdName[]", pa.list_(pa.struct([("Id", pa.int64()), ("Name", pa.string())]))),
        ("CustomAttributes", pa.map_(pa.string(), pa.string())),
        ({"A": "String", "B": "Lookup"}, pa.struct([("A", pa.string()), ("B", LOOKUP)])),
        ([{"A": "Int32"}], pa.list_(pa.struct([("A", pa.int32())]))),
        (["Lookup"], pa.list_(LOOKUP)),
    ],
)
def test_types_map_to_arrow(spec: Any, arrow: pa.DataType) -> None:
    assert S.arrow_type(S.parse_type(spec)) == arrow


def test_byte_holds_a_year() -> None:
    """A Byte such as GraduationYearId 2018 does not fit uint8: Byte is int16."""
    assert S.Scalar("Byte").int_range == (-(2**15), 2**15 - 1)


def test_arrow_schema_is_the_list_subset_unless_detail() -> None:
    students = S.load_schema("students", REPO_SCHEMAS)
    lst = students.arrow_schema()
    full = students.arrow_schema(detail=True)
    assert lst.names == [f.name for f in students.fields if f.in_list]
    assert full.names == [f.name for f in students.fields]
    assert "CustomAttributeValues" not in lst.names
    assert full.field("CustomAttributeValues").type == pa.map_(pa.string(), pa.string())
    assert lst.field("Id").type == pa.int64()
    assert lst.field("GraduationYearId").type == pa.int16()
    assert lst.field("Program").type == LOOKUP


def _doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "entity": "things",
        "path": "/api/v2/things",
        "modify_filter": True,
        "details": False,
        "fields": {"Id": {"type": "Int64", "list": True}},
    }
    doc.update(over)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a JSON object"),
        (_doc(extra=1), "unknown key(s) 'extra'"),
        (_doc(entity=""), '"entity"'),
        (_doc(path="api/v2/x"), '"path"'),
        (_doc(modify_filter="yes"), '"modify_filter"'),
        (_doc(paged=1), '"paged"'),
        (_doc(fields={}), '"fields"'),
        (_doc(fields={"Id": "Int64"}), "field 'Id': expected"),
        (_doc(fields={"Id": {"type": "Int64"}}), "field 'Id': \"list\""),
        (_doc(fields={"Id": {"list": True}}), "field 'Id': \"type\" is missing"),
        (
            _doc(fields={"Id": {"type": "Int128", "list": True}}),
            "field 'Id': unknown type 'Int128'",
        ),
        (_doc(fields={"Id": {"type": "Int64", "list": True, "x": 1}}), "field 'Id': unknown key"),
        (_doc(fields={"_Id": {"type": "Int64", "list": True}}), "'_Id': names starting with '_'"),
        (
            _doc(
                fields={
                    "Id": {"type": "Int64", "list": True},
                    "ID": {"type": "Int64", "list": True},
                }
            ),
            "'ID' repeats another field's name up to case",
        ),
        (
            _doc(fields={"Loc": {"type": {"City": "Strin"}, "list": True}}),
            "field 'Loc': City: unknown type 'Strin'",
        ),
        (_doc(fields={"L": {"type": ["Int32", "Int64"], "list": True}}), "one-element array"),
        (_doc(fields={"L": {"type": {}, "list": True}}), "at least one field"),
        (_doc(fields={"L": {"type": 5, "list": True}}), "not int"),
        (_doc(fields={"Id": {"type": "Int64", "list": False}}), "no field is marked list"),
    ],
)
def test_bad_schema_documents_name_the_file_and_field(doc: Any, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        S.parse_schema(doc, "schemas/things.json")
    assert "schemas/things.json" in str(info.value)
    assert message in str(info.value)


def test_a_file_must_be_valid_json_named_after_its_entity(tmp_path: Path) -> None:
    (tmp_path / "things.json").write_text("{not json")
    with pytest.raises(SchemaError, match=r"things\.json: not valid JSON"):
        S.load_schemas(tmp_path)
    (tmp_path / "things.json").write_text(json.dumps(_doc(entity="others")))
    with pytest.raises(SchemaError, match="does not match the file name"):
        S.load_schemas(tmp_path)
    (tmp_path / "things.json").write_text(json.dumps(_doc()))
    assert list(S.load_schemas(tmp_path)) == ["things"]


def test_schemas_dir_order_argument_then_env_then_source_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(S.ENV_VAR, raising=False)
    assert S.schemas_dir() == REPO_SCHEMAS
    monkeypatch.setenv(S.ENV_VAR, str(tmp_path))
    assert S.schemas_dir() == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    assert S.schemas_dir(other) == other


def test_a_wrong_explicit_schemas_dir_is_an_error_not_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(S.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="TWELVETWENTY_SCHEMAS"):
        S.schemas_dir()
    with pytest.raises(ConfigError, match="argument"):
        S.schemas_dir(tmp_path / "nope")


def test_missing_entity_and_empty_dir_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no schema for entity 'nope'"):
        S.load_schema("nope", REPO_SCHEMAS)
    with pytest.raises(ConfigError, match=r"no schema files"):
        S.load_schemas(tmp_path)
