"""``twelvetwenty status``: what the state database knows, without a single request.

The budget used in the window and when units free, the cached token's age, the
unfinished job and each entity's checkpoint, and the last runs and how they ended.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pyarrow.parquet as pq

from extractor.commands.options import add_state_arguments
from extractor.config import DEFAULT_ENTITIES
from extractor.core.budget import DAY, BudgetPolicy, available, next_free_at, used
from extractor.core.pages import from_ranges
from extractor.durable import budget_policy, state_path
from extractor.errors import EXIT_OK, ConfigError
from extractor.http.auth import TOKEN_LIFETIME
from extractor.jobs import JOB_KEY
from extractor.sink.parquet import VERSIONS_DIR, current_version
from extractor.sink.snapshot import DETAIL_FETCHED_AT, pending_details
from extractor.sink.spool import SPOOL_DIR
from extractor.state.ledger import format_when
from extractor.state.store import CheckpointRow, StateStore, WatermarkRow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", required=True, help="the school's 12Twenty subdomain")
    add_state_arguments(parser)


def _ago(delta_seconds: float) -> str:
    seconds = int(abs(delta_seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min"


def _checkpoint_line(entity: str, data: dict[str, Any]) -> str:
    parts = data.get("parts") or []
    rows = sum(int(p.get("rows", 0)) for p in parts)
    version = data.get("version", "?")
    if data.get("kind") == "options":
        ids = data.get("ids")
        done = len(from_ranges(data.get("done") or []))
        progress = f"options {done}/{len(ids) if ids is not None else '?'} lookups"
    else:
        walk = data.get("walk") or {}
        total = walk.get("total")
        size = int(walk.get("page_size") or 500)
        pages = -(-total // size) if isinstance(total, int) else None
        done = len(from_ranges(walk.get("done") or []))
        progress = f"pages {done}/{pages if pages is not None else '?'} durable"
        if total is not None:
            progress += f" (Total {total})"
    return f"  {entity:<16} {progress}, {rows} rows in {len(parts)} part(s), version {version}"


def _detail_backlog(
    checkpoints: list[CheckpointRow], watermarks: list[WatermarkRow], policy: BudgetPolicy
) -> list[str]:
    """Records whose details are pending, per enriched snapshot (read from the Parquet
    snapshot itself: no request), in requests and in days of budget."""
    scopes = sorted({c.scope for c in checkpoints} | {w.scope for w in watermarks})
    lines: list[str] = []
    for scope in scopes:
        out = Path(scope)
        for entity in DEFAULT_ENTITIES:
            version = current_version(out, entity)
            if version is None:
                continue
            parts = sorted((out / VERSIONS_DIR / entity / version).glob("*.parquet"))
            if not parts or DETAIL_FETCHED_AT not in pq.read_schema(parts[0]).names:
                continue
            fetched: set[int] = set()  # fetched already, waiting to be merged
            for c in checkpoints:
                if c.scope == scope and c.entity == f"{entity}:details":
                    fetched |= from_ranges(c.data.get("done") or [])
                    fetched |= {int(i) for i in c.data.get("gone") or []}
                    spool = out / SPOOL_DIR / entity / str(c.data.get("version"))
                    fetched |= {
                        int(p.stem[1:]) for p in spool.glob("d*.json") if p.stem[1:].isdigit()
                    }
            pending = len(set(pending_details(out, entity)) - fetched)
            days = -(-pending // policy.capacity) if pending else 0
            lines.append(
                f"  {entity:<16} {pending} records' details pending: {pending} requests, "
                f"about {days} day(s) of budget  ({scope})"
            )
    return ["", "detail backlog:", *lines] if lines else []


def print_status(store: StateStore, policy: BudgetPolicy, path: Path, stream: TextIO) -> None:
    now = datetime.now(UTC)
    ts = now.timestamp()
    ledger = store.ledger_times(ts, policy)
    window = "the last 24 hours" if policy.window.value == "rolling" else "this UTC day"
    lines = [f"state: {path}", ""]
    left = available(ledger, ts, policy)
    line = f"budget: {used(ledger, ts, policy)} requests used in {window}; {left} of {policy.capacity} left"
    if policy.reserve:
        line += f" ({policy.reserve} reserved for other integrations)"
    lines.append(line)
    if left == 0:
        lines.append(f"  the next unit frees at {format_when(next_free_at(ledger, ts, policy))}")
    elif ledger and policy.window.value == "rolling":
        lines.append(f"  the oldest counted request frees at {format_when(min(ledger) + DAY)}")
    token = store.load_token()
    if token is None:
        lines.append("token: none cached (the next run fetches one: 1 request)")
    else:
        issued = token[1]
        age = (now - issued).total_seconds()
        remaining = (issued + TOKEN_LIFETIME - now).total_seconds()
        state = f"valid for {_ago(remaining)} more" if remaining > 0 else "expired"
        lines.append(f"token: issued {_ago(age)} ago ({state})")
    checkpoints = store.list_checkpoints()
    jobs = [c for c in checkpoints if c.entity == JOB_KEY]
    lines.append("")
    if not checkpoints:
        lines.append("checkpoints: none (no unfinished work)")
    for job in jobs:
        entities = job.data.get("entities", {})
        pending = [n for n, done in entities.items() if not done]
        done = [n for n, d in entities.items() if d]
        lines.append(
            f"job {job.data.get('job_id')} for {job.scope}: "
            + (f"pending {', '.join(pending)}" if pending else "finished")
            + (f"; done {', '.join(done)}" if done else "")
        )
        for c in checkpoints:
            if c.scope == job.scope and c.entity != JOB_KEY:
                lines.append(_checkpoint_line(c.entity, c.data))
    watermarks = store.list_watermarks()
    if watermarks:
        lines.append("")
        lines.append(
            "watermarks (the next incremental run asks for changes from here, minus the lookback):"
        )
        for w in watermarks:
            lines.append(f"  {w.entity:<16} {w.value:%Y-%m-%d %H:%M:%S} UTC  ({w.scope})")
    lines += _detail_backlog(checkpoints, watermarks, policy)
    runs = store.recent_runs(5)
    lines.append("")
    lines.append("last runs:" if runs else "last runs: none")
    for r in runs:
        finished = f"{r.finished_at:%Y-%m-%d %H:%M}" if r.finished_at else "-"
        requests = r.summary.get("requests", "?") if r.summary else "?"
        lines.append(
            f"  {r.run_id}  {r.command:<8} {r.started_at:%Y-%m-%d %H:%M} -> {finished}  "
            f"{r.status:<11} requests {requests}"
        )
    stream.write("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    policy = budget_policy(args.max_requests_per_day, args.reserve, args.budget_window)
    path = state_path(args.site, args.state)
    if not path.exists():
        raise ConfigError(f"no state for site {args.site!r} at {path}: nothing has run yet")
    with StateStore.open(path) as store:
        print_status(store, policy, path, sys.stdout)
    return EXIT_OK
