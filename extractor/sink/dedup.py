"""One row per Id in a version, whatever the walk had to fetch twice.

Page-number paging over data that changes can serve a row on two pages (an insert pushes
it onto the next page; the walk re-fetches pages whose rows may have moved). Both copies
are real rows; the later one is the newer. Before a version is published, this pass keeps
the last copy of each Id (in part order, then row order: the order rows were fetched in)
and rewrites only the parts that held an earlier copy.

Memory: the Id column plus a row index, 16 bytes a row, never the rows themselves.
Idempotent: a crash between two part rewrites leaves duplicates that a rerun removes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from extractor.sink.parquet import ROW_GROUP_ROWS


def _parts(directory: Path) -> list[Path]:
    return sorted(directory.glob("part-*.parquet"))


def deduplicate_version(directory: Path, key: str = "Id") -> int:
    """Keep the last row of each ``key`` across the parts of ``directory``; returns the
    number of rows removed. Rows whose key is null are all kept."""
    parts = _parts(directory)
    ids: list[pa.Array] = []
    for path in parts:
        column = pq.read_table(path, columns=[key]).column(key)
        ids.append(column.combine_chunks() if column.num_chunks else pa.array([], pa.int64()))
    if not ids:
        return 0
    all_ids = pa.concat_arrays(ids) if len(ids) > 1 else ids[0]
    non_null = pc.drop_null(all_ids)
    if pc.count_distinct(non_null).as_py() == len(non_null):
        return 0
    index = pa.array(range(len(all_ids)), pa.int64())
    table = pa.table({"k": all_ids, "i": index}).filter(pc.is_valid(all_ids))
    last = table.group_by("k").aggregate([("i", "max")]).column("i_max")
    keep = pc.or_(pc.is_in(index, value_set=last), pc.is_null(all_ids))
    removed = 0
    offset = 0
    for path, part_ids in zip(parts, ids, strict=True):
        n = len(part_ids)
        mask = keep.slice(offset, n)
        offset += n
        dropped = n - pc.sum(pc.cast(mask, pa.int64())).as_py()
        if not dropped:
            continue
        removed += dropped
        kept = pq.read_table(path).filter(mask)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(kept, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, path)
    return removed
