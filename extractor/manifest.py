"""The record of one run, kept beside the data: ``DIR/_runs/<run id>.json``.

It says what the run saw and did (totals, pages, rows, files, requests, problems, errors,
timings) so that an analyst can tell how complete a dataset is without the logs. It never
holds the key or the token: messages are redacted before they reach it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from extractor.errors import redact
from extractor.results import RunResult

RUNS_DIR = "_runs"


def manifest_dict(result: RunResult, *, site: str, base_url: str) -> dict[str, Any]:
    """A JSON-ready description of ``result``."""
    return {
        "run_id": result.run_id,
        "job_id": result.job_id,
        "resumed": result.resumed,
        "interrupted": result.interrupted,
        "site": site,
        "base_url": base_url,
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat(),
        "elapsed_seconds": round(result.elapsed, 3),
        "complete": result.complete,
        "requests": result.requests,
        "minimum_requests": result.minimum_requests,
        "error": redact(str(result.error)) if result.error else None,
        "entities": {
            name: {
                "status": e.status,
                "total_seen": e.total,
                "pages": e.pages,
                "rows": e.rows,
                "files": e.files,
                "requests": e.requests,
                "recovered_from_spool": e.recovered,
                "remaining_requests": e.remaining,
                "refetched_pages": e.refetched_pages,
                "duplicates_removed": e.duplicates_removed,
                "inserted": e.inserted,
                "updated": e.updated,
                "deleted": e.deleted,
                "snapshot_rows": e.snapshot_rows,
                "total_changes": e.total_changes,
                "problems": e.problems,
                "unknown_fields": e.unknown_fields,
                "error": redact(e.error) if e.error else None,
            }
            for name, e in result.entities.items()
        },
    }


def write_manifest(out_dir: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` atomically as ``DIR/_runs/<run id>.json``."""
    runs = out_dir / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    path = runs / f"{doc['run_id']}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)
    return path
