"""Entity schemas: load ``schemas/<entity>.json`` and map 12Twenty property types to Arrow.

A schema file is data, not code::

    {"entity": "students", "path": "/api/v2/students", "modify_filter": true,
     "details": false, "paged": true,
     "fields": {"Id": {"type": "Int64", "list": true}, ...}}

``modify_filter``: the API filters this entity by ``ModifyFromDate`` (incremental runs).
``details``: fetch ``GET {path}/{Id}`` per row for the detail-only fields (off by default).
``paged`` (optional, default true): the list answers with the paged envelope
``{"PageSize", "PageNumber", "Total", "NumberOfPages", "Items"}``; false for a bare JSON array
(``/api/v2/lookups/{id}/options``). ``list``: the list endpoint carries the field (the detail
endpoint carries every field).

Type grammar (the same as the simulator's ``extractor/simulator/entities.py``):

=====================  ================================================
12Twenty type          Arrow type
=====================  ================================================
``Byte``               int16 (a Byte such as a year, 2018, exceeds uint8)
``Int16``              int16
``Int32``              int32
``Int64``              int64 (every Id)
``String``             string
``Boolean``            bool
``DateTime``           timestamp[us, tz=UTC] (the API writes naive UTC)
``X[]``                list<X>
``Lookup``             struct<Id int64, AttributeId int64, Name string>
``IdName``             struct<Id int64, Name string>
``IdObject``           struct<Id int64>
``CustomAttributes``   map<string, string>
``{"F": T, ...}``      struct<F T, ...> (a nested object)
``[T]``                list<T> (an array of objects)
=====================  ================================================

Where schemas/ is found (first match wins), see :func:`schemas_dir`:

1. the ``directory`` argument (the command line passes ``--schemas DIR`` through);
2. the environment variable ``TWELVETWENTY_SCHEMAS``;
3. ``schemas/`` beside the ``extractor`` package: a source checkout or an editable install;
4. ``<sys.prefix>/share/twelvetwenty/schemas``: where a wheel installs its copy
   (``[tool.setuptools.data-files]`` in pyproject.toml).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from extractor.errors import ConfigError, SchemaError

ENV_VAR = "TWELVETWENTY_SCHEMAS"

_INT_RANGES: dict[str, tuple[int, int]] = {
    "Byte": (-(2**15), 2**15 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}
_SCALAR_ARROW: dict[str, pa.DataType] = {
    "Byte": pa.int16(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "String": pa.string(),
    "Boolean": pa.bool_(),
    "DateTime": pa.timestamp("us", tz="UTC"),
}
# Named object types: shorthand for a nested object.
_NAMED_OBJECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Lookup": (("Id", "Int64"), ("AttributeId", "Int64"), ("Name", "String")),
    "IdName": (("Id", "Int64"), ("Name", "String")),
    "IdObject": (("Id", "Int64"),),
}
_MAP_TYPES = frozenset({"CustomAttributes"})
_FILE_KEYS = frozenset({"entity", "path", "modify_filter", "details", "paged", "fields"})
_FIELD_KEYS = frozenset({"type", "list"})


# ---------------------------------------------------------------------------------------
# The parsed type tree: every 12Twenty type reduces to a scalar, a list, a struct or a map.


@dataclass(frozen=True, slots=True)
class Scalar:
    """``Byte``, ``Int16``, ``Int32``, ``Int64``, ``String``, ``Boolean`` or ``DateTime``."""

    name: str

    @property
    def int_range(self) -> tuple[int, int] | None:
        """Inclusive bounds for an integer type, None for the others."""
        return _INT_RANGES.get(self.name)


@dataclass(frozen=True, slots=True)
class ListOf:
    """A JSON array of ``item``."""

    item: TypeNode


@dataclass(frozen=True, slots=True)
class StructOf:
    """A JSON object with known keys (missing keys read as null)."""

    fields: tuple[tuple[str, TypeNode], ...]


@dataclass(frozen=True, slots=True)
class MapOf:
    """``CustomAttributes``: a JSON object of free keys to string-or-null values."""


TypeNode = Scalar | ListOf | StructOf | MapOf


def parse_type(spec: object) -> TypeNode:
    """Parse a 12Twenty type as written in a schema file; ValueError names what is wrong."""
    if isinstance(spec, str):
        if spec.endswith("[]"):
            return ListOf(parse_type(spec[:-2]))
        if spec in _SCALAR_ARROW:
            return Scalar(spec)
        if spec in _NAMED_OBJECTS:
            return StructOf(tuple((n, Scalar(t)) for n, t in _NAMED_OBJECTS[spec]))
        if spec in _MAP_TYPES:
            return MapOf()
        raise ValueError(f"unknown type {spec!r}")
    if isinstance(spec, list):
        if len(spec) != 1:
            raise ValueError("an array type is a one-element array [T]")
        return ListOf(parse_type(spec[0]))
    if isinstance(spec, dict):
        if not spec:
            raise ValueError("a nested object type needs at least one field")
        subfields: list[tuple[str, TypeNode]] = []
        seen: set[str] = set()
        for name, sub in spec.items():
            _check_name(name, seen)
            try:
                subfields.append((name, parse_type(sub)))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return StructOf(tuple(subfields))
    raise ValueError(f"a type is a name, a nested object or [T], not {type(spec).__name__}")


def arrow_type(node: TypeNode) -> pa.DataType:
    """The Arrow type a value of ``node`` is stored as."""
    if isinstance(node, Scalar):
        return _SCALAR_ARROW[node.name]
    if isinstance(node, ListOf):
        return pa.list_(arrow_type(node.item))
    if isinstance(node, StructOf):
        return pa.struct([pa.field(n, arrow_type(t)) for n, t in node.fields])
    return pa.map_(pa.string(), pa.string())


def contains(node: TypeNode, kind: type[Scalar | ListOf | StructOf | MapOf]) -> bool:
    """Whether ``node`` is or nests a node of class ``kind``."""
    if isinstance(node, kind):
        return True
    if isinstance(node, ListOf):
        return contains(node.item, kind)
    if isinstance(node, StructOf):
        return any(contains(t, kind) for _, t in node.fields)
    return False


def _check_name(name: object, seen: set[str]) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"field name {name!r} must be a non-empty string")
    if name.startswith("_"):
        raise ValueError(f"field name {name!r}: names starting with '_' are reserved")
    folded = name.casefold()
    if folded in seen:
        # DuckDB and Spark resolve column names case-insensitively.
        raise ValueError(f"field name {name!r} repeats another field's name up to case")
    seen.add(folded)


# ---------------------------------------------------------------------------------------
# Schemas


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One declared field of an entity."""

    name: str
    spec: str | dict[str, Any] | list[Any]  # the type as written in the file
    node: TypeNode
    in_list: bool

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.node)


@dataclass(frozen=True, slots=True)
class EntitySchema:
    """An entity as declared in ``schemas/<entity>.json``."""

    entity: str
    path: str
    modify_filter: bool
    details: bool
    paged: bool
    fields: tuple[FieldSpec, ...]
    source: str = "<memory>"  # the file it came from, for messages

    @property
    def list_fields(self) -> tuple[FieldSpec, ...]:
        """The fields the list endpoint carries, in declaration order."""
        return tuple(f for f in self.fields if f.in_list)

    def target_fields(self, detail: bool) -> tuple[FieldSpec, ...]:
        """The fields a converted row has: every field for detail rows, else the list ones."""
        return self.fields if detail else self.list_fields

    def arrow_schema(self, detail: bool = False) -> pa.Schema:
        """The declared columns (all nullable), list subset unless ``detail``."""
        return pa.schema([pa.field(f.name, f.arrow_type) for f in self.target_fields(detail)])

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def parse_schema(doc: object, source: str = "<memory>") -> EntitySchema:
    """Validate a decoded schema document; SchemaError names ``source`` and the field."""

    def fail(what: str) -> SchemaError:
        return SchemaError(f"schema {source}: {what}")

    if not isinstance(doc, dict):
        raise fail("the document must be a JSON object")
    unknown = sorted(set(doc) - _FILE_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(map(repr, unknown))}")
    entity = doc.get("entity")
    if not isinstance(entity, str) or not entity:
        raise fail('"entity" must be a non-empty string')
    path = doc.get("path")
    if not isinstance(path, str) or not path.startswith("/api/"):
        raise fail('"path" must be a string starting with /api/')
    flags: dict[str, bool] = {}
    for key, default in (("modify_filter", None), ("details", False), ("paged", True)):
        value = doc.get(key, default)
        if not isinstance(value, bool):
            raise fail(f'"{key}" must be true or false')
        flags[key] = value
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise fail('"fields" must be a non-empty object of field -> {"type", "list"}')
    fields: list[FieldSpec] = []
    seen: set[str] = set()
    for name, entry in raw_fields.items():
        try:
            _check_name(name, seen)
        except ValueError as exc:
            raise fail(str(exc)) from None
        if not isinstance(entry, dict):
            raise fail(f'field {name!r}: expected {{"type": ..., "list": true|false}}')
        extra = sorted(set(entry) - _FIELD_KEYS)
        if extra:
            raise fail(f"field {name!r}: unknown key(s) {', '.join(map(repr, extra))}")
        if not isinstance(entry.get("list"), bool):
            raise fail(f'field {name!r}: "list" must be true or false')
        if "type" not in entry:
            raise fail(f'field {name!r}: "type" is missing')
        try:
            node = parse_type(entry["type"])
        except ValueError as exc:
            raise fail(f"field {name!r}: {exc}") from None
        fields.append(FieldSpec(name, entry["type"], node, entry["list"]))
    if not any(f.in_list for f in fields):
        raise fail("no field is marked list: true")
    return EntitySchema(
        entity=entity,
        path=path,
        modify_filter=flags["modify_filter"],
        details=flags["details"],
        paged=flags["paged"],
        fields=tuple(fields),
        source=source,
    )


def load_schema_file(path: Path) -> EntitySchema:
    """Read and validate one schema file; its name must be ``<entity>.json``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"schema {path}: cannot read: {exc.strerror}") from exc
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"schema {path}: not valid JSON: {exc}") from None
    schema = parse_schema(doc, str(path))
    if schema.entity != path.stem:
        raise SchemaError(f"schema {path}: entity {schema.entity!r} does not match the file name")
    return schema


def _candidates(directory: str | os.PathLike[str] | None) -> Iterable[tuple[str, Path]]:
    if directory is not None:
        yield "argument", Path(directory)
        return
    env = os.environ.get(ENV_VAR)
    if env:
        yield ENV_VAR, Path(env)
        return
    yield "source tree", Path(__file__).resolve().parents[2] / "schemas"
    yield "installed data", Path(sys.prefix) / "share" / "twelvetwenty" / "schemas"


def schemas_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where schema files are read from (see the module docstring for the order).

    An explicit ``directory`` or ``$TWELVETWENTY_SCHEMAS`` must exist: a typo there is a
    ConfigError rather than a silent fall-back to the built-in schemas.
    """
    tried: list[str] = []
    for origin, candidate in _candidates(directory):
        if candidate.is_dir():
            return candidate
        tried.append(f"{candidate} ({origin})")
    raise ConfigError("no schemas directory found; tried " + ", ".join(tried))


def load_schemas(directory: str | os.PathLike[str] | None = None) -> dict[str, EntitySchema]:
    """Every ``*.json`` schema in the schemas directory, by entity name."""
    root = schemas_dir(directory)
    out = {s.entity: s for s in map(load_schema_file, sorted(root.glob("*.json")))}
    if not out:
        raise ConfigError(f"no schema files (*.json) in {root}")
    return out


def load_schema(entity: str, directory: str | os.PathLike[str] | None = None) -> EntitySchema:
    """The schema of one entity; ConfigError if there is no ``<entity>.json``."""
    path = schemas_dir(directory) / f"{entity}.json"
    if not path.is_file():
        raise ConfigError(f"no schema for entity {entity!r} ({path} does not exist)")
    return load_schema_file(path)
