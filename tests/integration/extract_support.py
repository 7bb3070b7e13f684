"""Shared pieces of the extraction tests: run the extractor against a served simulator and
compare what landed in Parquet with the simulator's ground truth."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from extractor.clock import ManualClock
from extractor.config import Secret, Settings
from extractor.progress import Progress
from extractor.records.schema import load_schemas
from extractor.results import RunResult
from extractor.run import Extraction
from extractor.simulator.data import SchoolData
from extractor.simulator.server import RunningSimulator

SCHEMAS = load_schemas()


def settings_for(running: RunningSimulator, out: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "site": "testschool",
        "base_url": running.base_url,
        "api_key": Secret(running.api_key),
        "out_dir": out,
    }
    return Settings(**(base | overrides))


async def extract(
    running: RunningSimulator,
    out: Path,
    *,
    clock: ManualClock | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    **overrides: Any,
) -> RunResult:
    """One extraction against ``running`` with injected time (backoffs do not sleep)."""
    extraction = Extraction(
        settings_for(running, out, **overrides),
        # The extractor's time matches the API's: its frozen upper bound (ModifyToDate)
        # must not fall before the data's modify dates.
        clock=clock or ManualClock(running.sim.clock.now()),
        rng=random.Random(seed),
        progress=progress or Progress(log_format="text", interval=1e9),
    )
    return await extraction.run()


def parse_api_datetime(text: str) -> datetime:
    """The API's naive-UTC text (0-7 decimals) as an aware datetime, truncated to us."""
    base, _, frac = text.rstrip("Z").partition(".")
    value = datetime.fromisoformat(base).replace(tzinfo=UTC)
    return value + timedelta(microseconds=int((frac + "000000")[:6]))


def expected_value(value: Any, type_: Any) -> Any:
    """What a JSON value of 12Twenty type ``type_`` must read back as from Parquet."""
    if value is None:
        return None
    if isinstance(type_, dict):
        return {k: expected_value(value.get(k), t) for k, t in type_.items()}
    if isinstance(type_, list):
        return [expected_value(v, type_[0]) for v in value]
    if type_.endswith("[]"):
        return [expected_value(v, type_[:-2]) for v in value]
    if type_ == "DateTime":
        return parse_api_datetime(value)
    if type_ == "CustomAttributes":
        return sorted(value.items())
    if type_ == "Lookup":
        return {k: value.get(k) for k in ("Id", "AttributeId", "Name")}
    if type_ == "IdName":
        return {k: value.get(k) for k in ("Id", "Name")}
    return value


def read_entity(out: Path, entity: str) -> pa.Table:
    """Every row of ``DIR/<entity>``, the way an analyst's pyarrow reads it."""
    return ds.dataset(out / entity, format="parquet").to_table()


def duckdb_counts(out: Path, entity: str) -> tuple[int, int]:
    """(live rows, distinct live Ids) through DuckDB's documented reading of the lake."""
    glob = f"{out}/{entity}/**/*.parquet"
    relation = duckdb.sql(
        "SELECT count(*), count(DISTINCT Id) FROM "
        f"read_parquet('{glob}', hive_partitioning=true, union_by_name=true) "
        "WHERE _deleted_at IS NULL"
    )
    assert relation is not None
    [row] = relation.fetchall()
    return int(row[0]), int(row[1])


def assert_entity_matches(out: Path, data: SchoolData, entity: str) -> None:
    """Every ground-truth row of ``entity`` landed exactly once with the right values."""
    schema = SCHEMAS[entity]
    table = read_entity(out, entity)
    assert table.schema.field("_extracted_at").type == pa.timestamp("us", tz="UTC")
    table = table.filter(pc.is_null(table.column("_deleted_at")))  # rows still at the source
    rows = table.to_pylist()
    got = {r["Id"]: r for r in rows}
    assert len(got) == len(rows), f"{entity}: duplicated Ids"
    truth = list(data.ground_truth(entity))
    assert sorted(got) == [r["Id"] for r in truth], f"{entity}: Ids differ from ground truth"
    assert duckdb_counts(out, entity) == (len(truth), len(truth))
    for field in schema.list_fields:
        expected_type = field.spec
        assert table.schema.field(field.name).type == field.arrow_type, field.name
        for row in truth:
            want = expected_value(row.get(field.name), expected_type)
            have = got[row["Id"]][field.name]
            if isinstance(want, list) and want and isinstance(want[0], tuple):
                have = sorted(have or [])
            assert have == want, f"{entity}.{field.name} of Id {row['Id']}: {have!r} != {want!r}"


def assert_no_secret(paths: Iterable[Path], *secrets: str) -> None:
    """None of ``secrets`` appears in any file under ``paths``."""
    for root in paths:
        for path in [root] if root.is_file() else list(root.rglob("*")):
            if path.is_file():
                content = path.read_bytes()
                for secret in secrets:
                    assert secret.encode() not in content, f"a secret leaked into {path}"
