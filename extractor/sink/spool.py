"""The page spool: every fetched body is on disk before anything else happens to it.

A request is the scarcest thing this program has (5,000 a day, shared), so a body that
cost one must survive a crash. Each body is written to ``DIR/_spool/<entity>/<version>/``
under a temporary name and renamed, the moment it arrives; the sink converts spooled
bodies into Parquet parts and deletes them once a part holding their rows is committed. A
process killed at any instant therefore loses at most the requests still on the wire:
whatever is in the spool is converted by the next run instead of being fetched again.

Names carry the key: ``p<page>.json`` for list pages, ``l<lookup id>.json`` for a
lookup's options. Partial ``.tmp`` files are debris from a crash and are ignored.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

SPOOL_DIR = "_spool"


class Spool:
    """The spooled bodies of one entity's version."""

    def __init__(self, out_dir: Path, entity: str, version: str, prefix: str = "p") -> None:
        self.directory = out_dir / SPOOL_DIR / entity / version
        self.prefix = prefix
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: int) -> Path:
        return self.directory / f"{self.prefix}{key}.json"

    def put(self, key: int, body: bytes) -> None:
        """Store ``body`` under ``key`` atomically (a crash leaves it whole or absent)."""
        path = self._path(key)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(body)
        os.replace(tmp, path)

    def get(self, key: int) -> bytes:
        return self._path(key).read_bytes()

    def keys(self) -> list[int]:
        """Keys of the complete bodies present, ascending."""
        keys = []
        for path in self.directory.glob(f"{self.prefix}*.json"):
            digits = path.name[len(self.prefix) : -len(".json")]
            if digits.isdigit():
                keys.append(int(digits))
        return sorted(keys)

    def drop(self, keys: list[int]) -> None:
        """Forget bodies whose rows are durable elsewhere now."""
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

    def remove(self) -> None:
        """Delete this version's spool entirely (the version is published)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        for parent in (self.directory.parent, self.directory.parent.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty
