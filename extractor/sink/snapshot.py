"""The current snapshot: one row per Id, merged by streaming, swapped in atomically.

A run pulls a *delta* (the rows of its window: every row for a full walk, only the changed
ones for an incremental run) into a staging directory. The new snapshot is

- the previous snapshot's rows whose Id is not in the delta (unchanged rows, carried over
  with their ``_extracted_at``); after a *full* walk those rows no longer exist at the
  source, so they are kept with ``_deleted_at`` set rather than silently kept or dropped;
- plus the delta's rows, the last copy of each Id (page-number paging over changing data
  can serve a row twice; the later copy is the newer), with ``_deleted_at`` null.

Both inputs are read batch by batch (``iter_batches``) and written through rolling part
files: memory holds the delta's Ids and one batch, never an entity. The result goes to a
new version directory and is published by :func:`~extractor.sink.parquet.publish_version`
(one atomic rename), so a reader, or a crash, sees the old snapshot or the new one. Merging
is idempotent: redoing it after a crash, even after the swap, gives the same snapshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from extractor.sink.parquet import VERSIONS_DIR, PartWriter, current_version

EXTRACTED_AT = "_extracted_at"
DELETED_AT = "_deleted_at"
DETAIL_FETCHED_AT = "_detail_fetched_at"
MODIFY_DATE = "ModifyDate"
TIMESTAMP = pa.timestamp("us", tz="UTC")
BATCH_ROWS = 65_536
ROWS_PER_FILE = 8 * BATCH_ROWS


@dataclass(frozen=True)
class MergeStats:
    """What a merge did."""

    rows: int  # rows in the new snapshot, deleted ones included
    inserted: int  # Ids new to the snapshot
    updated: int  # Ids the delta replaced
    carried: int  # rows kept from the previous snapshot unchanged
    deleted: int  # rows newly marked deleted (full walks only)
    duplicates: int  # extra copies of an Id within the delta, dropped


def _parts(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(directory.glob("*.parquet"))


def _ids(paths: Sequence[Path], key: str) -> list[pa.Array]:
    out = []
    for path in paths:
        column = pq.read_table(path, columns=[key]).column(key)
        out.append(column.combine_chunks() if column.num_chunks else pa.array([], pa.int64()))
    return out


def _modify_dates(paths: Sequence[Path], key: str) -> pa.Table:
    """(Id, ModifyDate) of the delta, for telling a re-read from a change."""
    tables = [
        pq.read_table(p, columns=[key, MODIFY_DATE])
        for p in paths
        if MODIFY_DATE in pq.read_schema(p).names
    ]
    if not tables:
        return pa.table({key: pa.array([], pa.int64()), "_delta_modify": pa.array([], TIMESTAMP)})
    table = pa.concat_tables(tables)
    return table.rename_columns([key, "_delta_modify"])


def _same_detailed(batch: pa.RecordBatch, versions: pa.Table, key: str) -> pa.Array:
    """Ids of ``batch``'s detailed rows that the delta brings again unchanged."""
    if MODIFY_DATE not in batch.schema.names:
        return pa.array([], pa.int64())
    old = pa.table(
        {
            key: batch.column(batch.schema.get_field_index(key)),
            "_old_modify": batch.column(batch.schema.get_field_index(MODIFY_DATE)),
            "_detailed": pc.is_valid(batch.column(batch.schema.get_field_index(DETAIL_FETCHED_AT))),
        }
    ).filter(pc.field("_detailed"))
    if old.num_rows == 0 or versions.num_rows == 0:
        return pa.array([], pa.int64())
    joined = old.join(versions, key)
    same = joined.filter(pc.equal(joined.column("_old_modify"), joined.column("_delta_modify")))
    return same.column(key).combine_chunks()


def _has_duplicates(ids: pa.Array) -> bool:
    """Whether a non-null Id occurs twice (by sorting: less memory than a hash set)."""
    present = pc.drop_null(ids)
    if len(present) < 2:
        return False
    ordered = pc.take(present, pc.sort_indices(present))
    return bool(pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))).as_py())


def _last_copy_masks(ids: list[pa.Array]) -> list[pa.Array]:
    """Per part, which rows are the last copy of their Id (null Ids are all kept)."""
    if not ids:
        return []
    every = pa.concat_arrays(ids)
    index = pa.array(range(len(every)), pa.int64())
    valid = pa.table({"k": every, "i": index}).filter(pc.is_valid(every))
    last = valid.group_by("k").aggregate([("i", "max")]).column("i_max")
    keep = pc.or_(pc.is_in(index, value_set=last), pc.is_null(every))
    masks, offset = [], 0
    for part in ids:
        masks.append(keep.slice(offset, len(part)))
        offset += len(part)
    return masks


def _schema(sources: Sequence[Path]) -> pa.Schema:
    """Every column of every input, in first-seen order, plus the metadata columns."""
    schemas = [pq.read_schema(p) for p in sources]
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for f in schema:
            if f.name not in fields:
                fields[f.name] = f.with_nullable(True)
    detailed = DETAIL_FETCHED_AT in fields
    for name in (EXTRACTED_AT, DELETED_AT, DETAIL_FETCHED_AT):
        fields.pop(name, None)
    ordered = [f for n, f in fields.items() if n != "_raw"]
    if "_raw" in fields:
        ordered.append(fields["_raw"])
    metadata = [pa.field(EXTRACTED_AT, TIMESTAMP), pa.field(DELETED_AT, TIMESTAMP)]
    if detailed:
        metadata.append(pa.field(DETAIL_FETCHED_AT, TIMESTAMP))
    return pa.schema([*ordered, *metadata])


def _align(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = []
    for f in schema:
        index = batch.schema.get_field_index(f.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, f.type))
        else:
            column = batch.column(index)
            columns.append(column if column.type == f.type else column.cast(f.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _Writer:
    """Rolling part files of one schema in ``directory``."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self.directory = directory
        self.schema = schema
        self.rows = 0
        self._index = 0
        self._part: PartWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._part is not None and self._part.rows >= ROWS_PER_FILE:
            self._part.close()
            self._part = None
        if self._part is None:
            path = self.directory / f"part-{self._index:05d}.parquet"
            self._index += 1
            self._part = PartWriter(path, self.schema)
        self._part.write(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        if self._part is None:  # an empty snapshot still has a file with its columns
            self._part = PartWriter(self.directory / "part-00000.parquet", self.schema)
        self._part.close()


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)


def merge_snapshot(
    out_dir: Path,
    entity: str,
    delta_dir: Path,
    new_version: str,
    *,
    full: bool,
    now: datetime,
    key: str = "Id",
    gone: Sequence[int] = (),
) -> MergeStats:
    """Write the merge of the current snapshot of ``entity`` and ``delta_dir`` as version
    ``new_version`` (not yet published). ``full``: the delta is a whole walk, so Ids it
    lacks were deleted at the source. ``gone``: Ids known deleted (a detail request
    answered 404), marked ``_deleted_at``.

    A row that already has its details (``_detail_fetched_at``) is kept when the delta
    brings the same Id with the same ModifyDate (a list re-read, e.g. by the lookback):
    the record did not change, so its details stay and are not fetched again."""
    target = out_dir / VERSIONS_DIR / entity / new_version
    shutil.rmtree(target, ignore_errors=True)  # debris of an interrupted merge
    target.mkdir(parents=True)
    previous_version = current_version(out_dir, entity)
    previous = (
        out_dir / VERSIONS_DIR / entity / previous_version
        if previous_version and previous_version != new_version
        else None
    )
    old_parts, delta_parts = _parts(previous), _parts(delta_dir)
    schema = _schema([*old_parts, *delta_parts])
    delta_ids = _ids(delta_parts, key)
    every = pa.concat_arrays(delta_ids) if delta_ids else pa.array([], pa.int64())
    if (
        not old_parts
        and not _has_duplicates(every)
        and all(pq.read_schema(p).equals(schema) for p in delta_parts)
    ):
        # A first snapshot from a walk without duplicates is the delta itself: its files
        # are complete and never change again, so they are linked, not rewritten.
        for part in delta_parts:
            os.link(part, target / part.name)
        rows = len(every)
        return MergeStats(rows, rows, 0, 0, 0, 0)
    masks = _last_copy_masks(delta_ids)
    delta_set = pc.unique(every)
    versions = _modify_dates(delta_parts, key) if DETAIL_FETCHED_AT in schema.names else None
    gone_set = pa.array(sorted(set(gone)), pa.int64())
    unchanged: list[pa.Array] = []  # Ids whose detailed old row is kept over the delta's
    writer = _Writer(target, schema)
    carried = deleted = replaced = 0
    stamp = pa.scalar(now, TIMESTAMP)
    for path in old_parts:
        for batch in _batches(path):
            batch = _align(batch, schema)
            ids = batch.column(schema.get_field_index(key))
            in_delta = pc.fill_null(pc.is_in(ids, value_set=delta_set), False)
            if versions is not None:
                same = _same_detailed(batch, versions, key)
                unchanged.append(same)
                in_delta = pc.and_(in_delta, pc.invert(pc.is_in(ids, value_set=same)))
            replaced += pc.sum(pc.cast(in_delta, pa.int64())).as_py() or 0
            kept = batch.filter(pc.invert(in_delta))
            kept_ids = kept.column(schema.get_field_index(key))
            dead = pc.fill_null(pc.is_in(kept_ids, value_set=gone_set), False)
            if full:  # a whole walk that did not bring an Id: it is gone at the source
                absent = pc.invert(pc.fill_null(pc.is_in(kept_ids, value_set=delta_set), False))
                dead = pc.or_(dead, absent)
            if kept.num_rows and pc.any(dead).as_py():
                index = schema.get_field_index(DELETED_AT)
                was = kept.column(index)
                deleted += pc.sum(pc.cast(pc.and_(dead, pc.is_null(was)), pa.int64())).as_py() or 0
                marked = pc.if_else(pc.and_(dead, pc.is_null(was)), stamp, was)
                kept = kept.set_column(index, DELETED_AT, marked)
            carried += kept.num_rows
            writer.write(kept)
    keep_old = pa.concat_arrays(unchanged) if unchanged else pa.array([], pa.int64())
    duplicates = 0
    for path, mask in zip(delta_parts, masks, strict=True):
        offset = 0
        for batch in _batches(path):
            part_mask = mask.slice(offset, batch.num_rows)
            offset += batch.num_rows
            kept = batch.filter(part_mask)
            duplicates += batch.num_rows - kept.num_rows
            if len(keep_old):
                ids = kept.column(kept.schema.get_field_index(key))
                kept = kept.filter(
                    pc.invert(pc.fill_null(pc.is_in(ids, value_set=keep_old), False))
                )
            writer.write(_align(kept, schema))
    writer.close()
    fresh = len(delta_set)
    return MergeStats(
        rows=writer.rows,
        inserted=fresh - replaced,
        updated=replaced,
        carried=carried - deleted if full else carried,
        deleted=deleted,
        duplicates=duplicates,
    )


def pending_details(out_dir: Path, entity: str) -> list[int]:
    """Ids of ``entity``'s snapshot whose details are pending: not fetched yet, or the
    record changed since (a list merge replaced the row), and not deleted. Reads three
    columns, never the rows."""
    version = current_version(out_dir, entity)
    if version is None:
        return []
    ids: list[int] = []
    for path in _parts(out_dir / VERSIONS_DIR / entity / version):
        names = pq.read_schema(path).names
        columns = [c for c in ("Id", DETAIL_FETCHED_AT, DELETED_AT) if c in names]
        table = pq.read_table(path, columns=columns)
        live = pc.is_null(table.column(DELETED_AT)) if DELETED_AT in names else None
        if DETAIL_FETCHED_AT in names:
            todo = pc.is_null(table.column(DETAIL_FETCHED_AT))
            live = todo if live is None else pc.and_(live, todo)
        if live is not None:
            table = table.filter(live)
        ids += [int(v) for v in table.column("Id").to_pylist() if v is not None]
    return ids
