"""The append-only change log: every version of every row ever pulled.

``DIR/_changes/<entity>/extracted_date=YYYY-MM-DD/<run>-part-NNNNN.parquet`` holds each
run's delta as it was pulled (duplicates within a walk included, with ``_extracted_at``),
partitioned by the day it was extracted, hive-style, so that
``read_parquet('DIR/_changes/students/**/*.parquet', hive_partitioning=true)`` gives the
full history of every student. Files are moved in (the delta has been merged into the
snapshot by then), never rewritten: a crash mid-move is finished by the next run.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

CHANGES_DIR = "_changes"


def changes_dir(out_dir: Path, entity: str, when: datetime) -> Path:
    return out_dir / CHANGES_DIR / entity / f"extracted_date={when:%Y-%m-%d}"


def append_changes(out_dir: Path, entity: str, delta_dir: Path, run: str, when: datetime) -> int:
    """Move the delta's parts into the change log; returns how many files moved."""
    target = changes_dir(out_dir, entity, when)
    target.mkdir(parents=True, exist_ok=True)
    moved = 0
    for part in sorted(delta_dir.glob("*.parquet")):
        destination = target / f"{run}-{part.name}"
        if not destination.exists():
            os.replace(part, destination)
            moved += 1
        else:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
    return moved
