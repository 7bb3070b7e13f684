"""Arrow batches -> Parquet files, written so that a reader never sees a partial result.

Layout under the output directory ``DIR``::

    DIR/<entity>                  -> symlink to _versions/<entity>/<version> (the snapshot)
    DIR/_versions/<entity>/<version>/part-00000.parquet ...
    DIR/_staging/<entity>/<run>/part-00000.parquet ...   (a run's delta, being written)

A run writes its delta to a staging directory part by part; each part is written under a
``.tmp`` name and renamed when complete. The delta is then merged with the current
snapshot into a new version (:mod:`extractor.sink.snapshot`), and :func:`publish_version`
swaps the ``DIR/<entity>`` symlink to it with one atomic rename. Readers globbing
``DIR/<entity>/**/*.parquet`` therefore see the old snapshot or the new one, never both and
never a half-written file. Directories starting with ``_`` are skipped by Spark,
pyarrow.dataset and polars hive readers.

Parquet wants big row groups (PERF-NOTES: >= 50k rows), so batches are buffered to
``row_group_rows`` before each row group is written; a batch whose schema differs from the
open part's (a new field appeared) closes the part and starts another, which readers unify
with ``union_by_name``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from extractor.errors import ExtractorError

VERSIONS_DIR = "_versions"
STAGING_DIR = "_staging"
ROW_GROUP_ROWS = 65_536
ROWS_PER_FILE = 8 * ROW_GROUP_ROWS


class SinkError(ExtractorError):
    """Output could not be written (disk full, permissions, ...)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartWriter:
    """One Parquet file, written under a temporary name and renamed by :meth:`close`."""

    def __init__(self, path: Path, schema: pa.Schema, *, row_group_rows: int = ROW_GROUP_ROWS):
        self.path = path
        self.schema = schema
        self.rows = 0
        self._tmp = path.with_name(path.name + ".tmp")
        self._row_group_rows = row_group_rows
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._writer = pq.ParquetWriter(
            self._tmp, schema, compression="zstd", write_statistics=True, use_dictionary=True
        )

    def write(self, batch: pa.RecordBatch) -> None:
        """Buffer ``batch``; write full row groups as they fill."""
        if not batch.schema.equals(self.schema):
            raise ValueError("batch schema differs from the part's schema")
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= self._row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._pending.clear()
        self._pending_rows = 0
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def close(self) -> Path:
        """Write what is buffered, make the file durable and give it its final name."""
        self._flush()
        self._writer.close()
        with open(self._tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Drop the half-written file."""
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


@dataclass(frozen=True)
class CommittedPart:
    """A part file that is durable, and the keys (pages) whose rows it holds."""

    name: str
    keys: tuple[int, ...]
    rows: int


class EntityOutput:
    """One entity's output version: rolling part files in a staging dir, then a swap.

    A version can span several processes (a dump resumed after a crash or on another
    day): ``committed`` names the parts earlier runs made durable; anything else found in
    the staging dir is debris from a crash and is deleted.
    """

    def __init__(
        self,
        out_dir: Path,
        entity: str,
        version: str,
        *,
        committed: Sequence[CommittedPart] = (),
        row_group_rows: int = ROW_GROUP_ROWS,
        rows_per_file: int = ROWS_PER_FILE,
    ) -> None:
        self.out_dir = out_dir
        self.entity = entity
        self.version = version
        self.staging = out_dir / STAGING_DIR / entity / version
        self.committed: list[CommittedPart] = list(committed)
        self.rows = sum(p.rows for p in self.committed)
        self._row_group_rows = row_group_rows
        self._rows_per_file = rows_per_file
        self._part: PartWriter | None = None
        self._part_keys: list[int] = []
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
            keep = {p.name for p in self.committed}
            for path in self.staging.iterdir():
                if path.name not in keep:
                    path.unlink()
        except OSError as exc:
            raise SinkError(f"cannot prepare {self.staging}: {exc.strerror}") from exc
        self._next_index = 1 + max(
            (int(p.name.split("-")[1].split(".")[0]) for p in self.committed), default=-1
        )

    @property
    def files(self) -> list[Path]:
        return [self.staging / p.name for p in self.committed]

    def _next_path(self) -> Path:
        path = self.staging / f"part-{self._next_index:05d}.parquet"
        self._next_index += 1
        return path

    def write(self, batch: pa.RecordBatch, keys: Sequence[int]) -> list[CommittedPart]:
        """Append ``batch`` (the rows of ``keys``) to the open part, rolling to a new part
        when the schema changes or the part is full; returns the parts this committed."""
        done: list[CommittedPart] = []
        try:
            if self._part is not None and (
                not batch.schema.equals(self._part.schema) or self._part.rows >= self._rows_per_file
            ):
                done.append(self._close_part())
            if self._part is None:
                self._part = PartWriter(
                    self._next_path(), batch.schema, row_group_rows=self._row_group_rows
                )
            self._part.write(batch)
            self._part_keys.extend(keys)
            self.rows += batch.num_rows
        except OSError as exc:
            self.abort()
            raise SinkError(f"writing {self.entity} failed: {exc.strerror or exc}") from exc
        return done

    def _close_part(self) -> CommittedPart:
        assert self._part is not None
        part, self._part = self._part, None
        keys, self._part_keys = tuple(self._part_keys), []
        path = part.close()
        committed = CommittedPart(path.name, keys, part.rows)
        self.committed.append(committed)
        return committed

    def write_empty(self, schema: pa.Schema) -> None:
        """Make sure the version has a file: an empty entity still shows its columns."""
        if self._part is None and not self.committed:
            self._part = PartWriter(self._next_path(), schema, row_group_rows=self._row_group_rows)

    def flush(self) -> list[CommittedPart]:
        """Commit the open part, if any (at the end, or when a run stops early)."""
        if self._part is None:
            return []
        try:
            return [self._close_part()]
        except OSError as exc:
            self.abort()
            raise SinkError(f"writing {self.entity} failed: {exc.strerror or exc}") from exc

    def abort(self) -> None:
        """Drop the open part; an unpublished version with nothing in it goes too."""
        if self._part is not None:
            self._part.abort()
            self._part = None
            self._part_keys = []
        if not self.committed:
            with contextlib.suppress(OSError):
                self.staging.rmdir()
                self.staging.parent.rmdir()
                self.staging.parent.parent.rmdir()

    def remove(self) -> None:
        """Delete the staging directory (its parts are merged and in the change log)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        for parent in (self.staging.parent, self.staging.parent.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty


def current_version(out_dir: Path, entity: str) -> str | None:
    """The version ``DIR/<entity>`` points at, or None."""
    link = out_dir / entity
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def publish_version(out_dir: Path, entity: str, version: str) -> None:
    """Point ``DIR/<entity>`` at ``version`` with one rename; remove superseded versions
    but the one it replaced (a reader that resolved the old link a moment ago can still
    finish reading it).

    Safe to repeat: a crash after the rename but before the cleanup leaves the new version
    visible and old directories behind, which the next publish removes.
    """
    link = out_dir / entity
    if link.exists() and not link.is_symlink():
        raise SinkError(
            f"{link} is a real directory, not a version link made by this tool: "
            "move it away or choose another --out"
        )
    replaced = current_version(out_dir, entity)
    target = Path(VERSIONS_DIR) / entity / version
    tmp_link = out_dir / f".{entity}.link.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(target, tmp_link, target_is_directory=True)
    os.replace(tmp_link, link)
    _fsync_dir(out_dir)
    versions = out_dir / VERSIONS_DIR / entity
    for old in versions.iterdir():
        if old.name not in (version, replaced) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
