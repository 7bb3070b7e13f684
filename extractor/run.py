"""The orchestration of one extraction: job -> walk -> spool -> convert -> write -> publish.

Concurrency: a fixed set of fetcher tasks pulls work from the entities of the job; every
request they send goes through the client's single limiter (3 slots, shared across the
site's processes when a state database is used), so 3 requests are in flight whenever 3
are claimable anywhere. There are more fetchers than slots so that a fetcher sleeping on
a backoff never leaves a slot idle.

Durability: each body is spooled (atomically, on disk) the moment it arrives; each entity
has a sink task that converts spooled bodies on a worker thread, writes them to the
entity's new version and, whenever a part file is committed, checkpoints which keys it
holds and drops their spooled bodies. A run stopped at any instant (budget, Ctrl-C,
SIGKILL) therefore loses at most the requests on the wire; the next run replays the spool
and fetches only what is missing. When an entity's walk is whole, its version is
deduplicated by Id and published with one atomic swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from extractor.clock import Clock, SystemClock
from extractor.config import Settings
from extractor.core.pages import PageWalk, minimum_requests, pages_needed
from extractor.core.watermark import Window, compute_window
from extractor.errors import ApiError, BudgetExhausted, ExtractorError, SchemaError
from extractor.http.auth import TokenStore
from extractor.http.client import ApiClient, CountingBudget, RequestBudget, new_session
from extractor.http.limiter import Limiter, LocalLimiter
from extractor.jobs import CheckpointStore, Job, load_or_start_job, mark_done
from extractor.progress import Progress
from extractor.records.convert import MalformedPageError
from extractor.records.schema import EntitySchema, load_schemas
from extractor.results import EntityPlan, EntityResult, RunResult
from extractor.sink.changelog import append_changes
from extractor.sink.parquet import (
    CommittedPart,
    EntityOutput,
    SinkError,
    current_version,
    publish_version,
)
from extractor.sink.snapshot import (
    DELETED_AT,
    DETAIL_FETCHED_AT,
    EXTRACTED_AT,
    TIMESTAMP,
    merge_snapshot,
    pending_details,
)
from extractor.sink.spool import Spool
from extractor.walks import (
    WORK_FORMAT,
    Converted,
    DetailWork,
    OptionsWork,
    PagedWork,
    Work,
    parts_from_json,
    parts_to_json,
)

BATCH_PAGES = 16  # most pages converted together (conversion is faster in batches)
QUEUE_PAGES = 24  # fetched bodies waiting per entity before fetchers pause (flat memory)
OPTIONS_ENTITY = "lookup-options"
DETAILS_SUFFIX = ":details"  # the detail enrichment of an entity, e.g. "students:details"
WALKING, PUBLISHED = "walking", "published"
MALFORMED_RETRIES = 3  # fetches of one page whose body is not JSON before giving up
_EMPTY_PAGE = b'{"PageSize":0,"PageNumber":1,"Total":0,"NumberOfPages":0,"Items":[]}'


def _with_metadata(batch: pa.RecordBatch, when: datetime | None = None) -> pa.RecordBatch:
    """``batch`` with the snapshot's metadata columns: ``_extracted_at`` (when this run
    pulled the rows) and ``_deleted_at`` (null: the rows exist at the source)."""
    extracted = pa.repeat(pa.scalar(when, TIMESTAMP), batch.num_rows)
    batch = batch.append_column(pa.field(EXTRACTED_AT, TIMESTAMP), extracted)
    return batch.append_column(pa.field(DELETED_AT, TIMESTAMP), pa.nulls(batch.num_rows, TIMESTAMP))


def _envelope_total(body: bytes) -> int:
    """``Total`` of a list page (plan only needs this one number)."""
    try:
        doc = orjson.loads(body)
        total = doc["Total"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SchemaError(f"a first page without a readable Total ({type(exc).__name__})") from None
    if not isinstance(total, int) or total < 0:
        raise SchemaError(f"a first page with Total {total!r}")
    return total


class _Entity:
    """One entity's work, spool, output and sink queue in this run."""

    def __init__(
        self, name: str, work: Work, output: EntityOutput, spool: Spool, version: str
    ) -> None:
        self.name = name
        self.work = work
        self.output = output
        self.spool = spool
        self.version = version
        # None in the queue means "wake up and look again" (new state, or the run stopped).
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(QUEUE_PAGES)
        self.result = EntityResult(name, rows=output.rows)
        self.unreceived = 0  # claimed requests whose bodies the sink has not taken in yet
        self.failed = False
        self.finished = False
        self.malformed: dict[int, int] = {}  # key -> bodies that were not valid JSON
        self.phase = WALKING  # WALKING, then PUBLISHED once the merged snapshot is swapped in
        self.target = name  # the dataset it writes to (details write to their entity's)

    def wake(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes its sink anyway
            self.queue.put_nowait(None)

    def done_fetching(self) -> bool:
        return self.finished or self.failed or (self.unreceived == 0 and self.work.fetched_all())


class Extraction:
    """Runs (or continues) one extraction job with the given settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        progress: Progress | None = None,
        limiter: Limiter | None = None,
        budget: RequestBudget | None = None,
        store: CheckpointStore | None = None,
        token_store: TokenStore | None = None,
        schemas_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.progress = progress or Progress(log_format="text")
        self.limiter = limiter or LocalLimiter(settings.concurrency)
        self.counting = CountingBudget(budget)
        self.store = store
        self.token_store = token_store
        self._schemas = load_schemas(schemas_dir)
        self.scope = str(settings.out_dir.resolve())
        self.started_at = self.clock.now()
        self.run_id = f"{self.started_at:%Y%m%dT%H%M%SZ}-{random.Random().getrandbits(32):08x}"
        self.job: Job | None = None
        self.resumed = False
        self._entities: dict[str, _Entity] = {}
        self._changed = asyncio.Condition()
        self._stop: ExtractorError | None = None
        self._interrupted = False
        self.request_seconds: list[float] = []  # plan: observed request durations
        self.requests_sent = 0

    # -- set-up ---------------------------------------------------------------------------

    def _schema(self, name: str) -> EntitySchema:
        try:
            return self._schemas[name]
        except KeyError:
            raise SchemaError(f"no schema for {name} in schemas/") from None

    def _wanted(self) -> list[str]:
        """The entities this run asks for. Lookup options cost one request per lookup and
        cannot be filtered by date, so after the first dump only --full refreshes them."""
        names = list(self.settings.entities)
        fresh = current_version(self.settings.out_dir, OPTIONS_ENTITY) is None
        if "lookups" in names and (self.settings.full or fresh):
            names.append(OPTIONS_ENTITY)
        return names

    def prepare(self) -> None:
        """Load or start the job and set up each of its entities (no request is sent)."""
        if self.job is not None:
            return
        self.job, self.resumed = load_or_start_job(
            self.store,
            self.scope,
            self._wanted(),
            job_id=self.run_id,
            now=self.started_at,
            full=self.settings.full,
        )
        wanted = self._wanted()
        if "lookups" in self.settings.entities:
            wanted.append(OPTIONS_ENTITY)  # an unfinished job's options are finished too
        for name, done in self.job.entities.items():
            if not done and name in wanted:
                self._entities[name] = self._entity(name, self.job)
                self.progress.entity(name)
        options = self._entities.get(OPTIONS_ENTITY)
        if (
            options is not None
            and isinstance(options.work, OptionsWork)
            and options.work.ids is None
            and "lookups" not in self._entities
        ):
            # The lookups were published by an earlier run of this job: read their Ids.
            self._learn_lookup_ids_from(options, self.settings.out_dir / "lookups")
        for name in self.settings.details:
            if name in self.settings.entities:
                details = self._detail_entity(name)
                self._entities[details.name] = details
                self.progress.entity(details.name)
                if name not in self._entities:  # its list is done: the queue is known now
                    self._queue_details(name)

    def _detail_entity(self, name: str) -> _Entity:
        """``name``'s detail enrichment: outside the job (its queue is derived from the
        snapshot), with its own checkpoint of committed parts and 404s."""
        key = f"{name}{DETAILS_SUFFIX}"
        saved = self.store.load_checkpoint(self.scope, key) if self.store else None
        schema = self._schema(name)
        if saved is not None and saved.get("format") == WORK_FORMAT:
            version = str(saved["version"])
            committed = parts_from_json(saved.get("parts", []))
            work: Work = DetailWork.restore(schema, saved)
        else:
            version, committed, work = f"{self.run_id}-details", [], DetailWork(schema)
        output = EntityOutput(self.settings.out_dir, name, version, committed=committed)
        spool = Spool(self.settings.out_dir, name, version, prefix=work.spool_prefix)
        entity = _Entity(key, work, output, spool, version)
        entity.target = name
        self._save(entity)
        return entity

    def _queue_details(self, name: str) -> None:
        """The records of ``name``'s snapshot whose details are pending."""
        details = self._entities.get(f"{name}{DETAILS_SUFFIX}")
        if details is None or not isinstance(details.work, DetailWork):
            return
        details.work.set_ids(pending_details(self.settings.out_dir, name))
        details.wake()

    def _entity(self, name: str, job: Job) -> _Entity:
        schema = self._schema(name)
        saved = self.store.load_checkpoint(self.scope, name) if self.store else None
        work: Work
        if saved is not None and saved.get("job_id") == job.job_id:
            if saved.get("format") != WORK_FORMAT:
                raise SchemaError(f"unknown checkpoint format for {name}; see `status`")
            version = str(saved["version"])
            committed = parts_from_json(saved.get("parts", []))
            if name == OPTIONS_ENTITY:
                work = OptionsWork.restore(schema, saved)
            else:
                work = PagedWork.restore(schema, saved)
        else:
            version, committed, saved = self.run_id, [], None
            if name == OPTIONS_ENTITY:
                work = OptionsWork(schema)
            else:
                work = PagedWork(
                    schema, self._window(name, schema, job), PageWalk(self.settings.page_size)
                )
        output = EntityOutput(self.settings.out_dir, name, version, committed=committed)
        spool = Spool(self.settings.out_dir, name, version, prefix=work.spool_prefix)
        entity = _Entity(name, work, output, spool, version)
        entity.phase = str(saved.get("phase", WALKING)) if saved else WALKING
        self._save(entity)
        return entity

    def _window(self, name: str, schema: EntitySchema, job: Job) -> Window:
        """Full walk for a --full job, a first dump, or an entity the API cannot filter by
        modify date; otherwise the changes since the watermark, minus the lookback. The
        upper bound is the job's start, frozen: later changes belong to the next run."""
        watermark = None
        if self.store is not None and not job.full:
            watermark = self.store.get_watermark(self.scope, name)
        if watermark is not None and current_version(self.settings.out_dir, name) is None:
            watermark = None  # the snapshot is gone: only a full walk can rebuild it
        return compute_window(
            watermark,
            job.started_at,
            lookback=self.settings.lookback,
            filterable=schema.modify_filter,
        )

    def _save(self, entity: _Entity) -> None:
        """Checkpoint ``entity``: its version, the durable parts, and its work's state."""
        if self.store is None or self.job is None:
            return
        data: dict[str, Any] = {
            "format": WORK_FORMAT,
            "job_id": self.job.job_id,
            "version": entity.version,
            "kind": entity.work.kind,
            "phase": entity.phase,
            "parts": parts_to_json(entity.output.committed),
        }
        data.update(entity.work.state())
        self.store.save_checkpoint(self.scope, entity.name, data)

    # -- scheduling -----------------------------------------------------------------------

    def _next_work(self) -> tuple[_Entity, int] | None:
        """Claim the next request, first pages first (they reveal the totals)."""
        live = [e for e in self._entities.values() if not (e.failed or e.finished)]
        for first_only in (True, False):
            for entity in live:
                work = entity.work
                if first_only and not (isinstance(work, PagedWork) and work.walk.total is None):
                    continue
                key = work.claim()
                if key is not None:
                    entity.unreceived += 1
                    return entity, key
        return None

    def _fetching_done(self) -> bool:
        return all(e.done_fetching() for e in self._entities.values())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _fetcher(self, client: ApiClient) -> None:
        while True:
            async with self._changed:
                while True:
                    if self._stop is not None or self._fetching_done():
                        return
                    claimed = self._next_work()
                    if claimed is not None:
                        break
                    await self._changed.wait()
            entity, key = claimed
            await self._fetch_one(client, entity, key)
            await self._notify()

    async def _fetch_one(self, client: ApiClient, entity: _Entity, key: int) -> None:
        """Fetch one body, spool it, hand it to the sink (or, after a stop, to the next run)."""
        path, params = entity.work.request(key)

        def keep(body: bytes) -> None:
            try:
                entity.spool.put(key, body)
            except OSError as exc:
                raise SinkError(f"cannot spool a page of {entity.name}: {exc}") from exc

        try:
            body = await client.get(path, params, keep=keep)
            entity.result.requests += 1
            self.progress.requests = self.counting.sent
        except ApiError as exc:
            entity.unreceived -= 1
            if exc.status == 404 and isinstance(entity.work, DetailWork):
                entity.work.forget(key)  # gone between the list and its details
                self._save(entity)
                entity.wake()  # no body will reach the sink: let it re-check its work
                return
            entity.work.release(key)
            self._halt(entity, exc)
            return
        except ExtractorError as exc:
            entity.unreceived -= 1
            entity.work.release(key)
            self._halt(entity, exc)
            return
        if self._stop is None:
            await entity.queue.put((key, body))
        else:
            # After a stop the sink may be gone: the spooled body waits for the next run.
            entity.unreceived -= 1
            entity.wake()

    def _halt(self, entity: _Entity | None, exc: ExtractorError) -> None:
        """Stop sending. A spent budget is a clean stop; anything else marks a failure."""
        if self._stop is None:
            self._stop = exc
        if entity is not None and not isinstance(exc, BudgetExhausted):
            entity.failed = True
            entity.result.error = str(exc)
        for e in self._entities.values():
            e.wake()

    def interrupt(self) -> None:
        """Ctrl-C: stop sending, finish writing what arrived, commit (exit 130)."""
        self._interrupted = True
        self._halt(None, ExtractorError("interrupted"))

    # -- sinks ----------------------------------------------------------------------------

    async def _replay(self, entity: _Entity) -> None:
        """Convert bodies a previous run spooled but did not make durable."""
        done: set[int] = set()
        for part in entity.output.committed:
            done.update(part.keys)
        keys = entity.spool.keys()
        stale = [k for k in keys if k in done]
        entity.spool.drop(stale)
        todo = [k for k in keys if k not in done]
        for start in range(0, len(todo), BATCH_PAGES):
            chunk = todo[start : start + BATCH_PAGES]
            bodies = [(k, await asyncio.to_thread(entity.spool.get, k)) for k in chunk]
            await self._write(entity, bodies)
            entity.result.recovered += len(bodies)

    async def _sink(self, entity: _Entity) -> None:
        """Convert, record and write one entity's bodies until its work is whole."""
        try:
            while True:
                # None items are wake-ups: whatever consumed one, the state is re-checked here.
                if entity.queue.empty() and (self._stop is not None or entity.done_fetching()):
                    break
                item = await entity.queue.get()
                if item is None:
                    continue
                batch = [item]
                # Adaptive batches: take what has already arrived, never wait for more.
                # When fetching outpaces conversion the queue fills and batches grow;
                # at the API's pace each page is converted as it lands.
                while len(batch) < BATCH_PAGES and not entity.queue.empty():
                    nxt = entity.queue.get_nowait()
                    if nxt is not None:
                        batch.append(nxt)
                entity.unreceived -= len(batch)
                await self._write(entity, batch)
                await self._notify()
        except ExtractorError as exc:
            self._halt(entity, exc)
        await self._finish(entity)

    async def _write(self, entity: _Entity, bodies: list[tuple[int, bytes]]) -> None:
        try:
            converted: Converted = await asyncio.to_thread(entity.work.convert, bodies)
        except MalformedPageError:
            if len(bodies) > 1:
                for body in bodies:  # find the bad one; the others are fine
                    await self._write(entity, [body])
                return
            self._malformed(entity, bodies[0][0])
            return
        committed: list[CommittedPart] = []
        rows = 0
        for key, batch in converted.rows:
            rows += batch.num_rows
            stamped = _with_metadata(batch, self.started_at)
            if isinstance(entity.work, DetailWork):
                fetched = pa.repeat(pa.scalar(self.started_at, TIMESTAMP), stamped.num_rows)
                stamped = stamped.append_column(pa.field(DETAIL_FETCHED_AT, TIMESTAMP), fetched)
            elif entity.name in self.settings.details:
                # List rows of an enriched entity: their details are pending, and say so.
                pending = pa.nulls(stamped.num_rows, TIMESTAMP)
                stamped = stamped.append_column(pa.field(DETAIL_FETCHED_AT, TIMESTAMP), pending)
            committed += await asyncio.to_thread(entity.output.write, stamped, [key])
        entity.spool.drop(converted.dropped)
        entity.result.refetched_pages += converted.refetch
        entity.result.pages += len(converted.rows)
        self._absorb(entity, converted, rows)
        self._committed(entity, committed)

    def _malformed(self, entity: _Entity, key: int) -> None:
        """A body complete by its length but not valid JSON: fetch it again, a few times."""
        count = entity.malformed[key] = entity.malformed.get(key, 0) + 1
        if count > MALFORMED_RETRIES:
            raise SchemaError(
                f"{entity.name}: the body for {entity.work.spool_prefix}{key} was not valid "
                f"JSON {count} times"
            )
        entity.spool.drop([key])
        entity.work.release(key)
        entity.result.refetched_pages += 1

    def _committed(self, entity: _Entity, parts: list[CommittedPart]) -> None:
        """Parts are durable: checkpoint them, then forget their spooled bodies."""
        if not parts:
            return
        for part in parts:
            entity.work.committed(part)
        self._save(entity)
        for part in parts:
            entity.spool.drop(list(part.keys))

    def _absorb(self, entity: _Entity, converted: Converted, rows: int) -> None:
        entity.result.rows += rows
        for report in converted.reports:
            for problem in report.problems:
                key = f"{problem.field}: {problem.kind}"
                entity.result.problems[key] = entity.result.problems.get(key, 0) + problem.count
                if (
                    problem.kind == "unknown_field"
                    and problem.field not in entity.result.unknown_fields
                ):
                    entity.result.unknown_fields.append(problem.field)
        progress = self.progress.entity(entity.name)
        progress.pages_done = entity.result.pages
        progress.pages_total = entity.work.known_total
        progress.rows = entity.output.rows
        progress.problems = sum(entity.result.problems.values())
        progress.state = "walking"
        self.progress.requests = self.counting.sent
        self.progress.tick(self.clock.monotonic())

    async def _finish(self, entity: _Entity) -> None:
        committed = await asyncio.to_thread(entity.output.flush)
        self._committed(entity, committed)
        work = entity.work
        if isinstance(work, PagedWork):
            entity.result.total = work.walk.total
            entity.result.total_changes = work.walk.total_changes
            entity.result.remaining = work.walk.remaining_requests
        elif isinstance(work, DetailWork):
            entity.result.total = work.known_total
            entity.result.remaining = None if work.ids is None else len(work.ids)
        elif work.ids is not None:
            entity.result.total = len(work.ids)
            entity.result.remaining = len([i for i in work.ids if i not in work.done])
        if entity.failed or not (work.fetched_all() and entity.unreceived == 0):
            entity.result.status = "failed" if entity.failed else "stopped"
            self.progress.entity(entity.name).state = entity.result.status
            return
        details = isinstance(work, DetailWork)
        gone = sorted(work.gone) if isinstance(work, DetailWork) else []
        unchanged = details and entity.output.rows == 0 and not gone
        if unchanged:
            pass  # no detail fetched, none gone: the snapshot stays as it is
        elif entity.output.rows == 0:
            # An empty delta still gets a file: the merge finds its columns.
            empty = await asyncio.to_thread(work.converter.convert_pages, [_EMPTY_PAGE])
            schema = _with_metadata(empty.record_batch).schema
            await asyncio.to_thread(entity.output.write_empty, schema)
            self._committed(entity, await asyncio.to_thread(entity.output.flush))
        if entity.name == "lookups":
            self._learn_lookup_ids(entity)
        out = self.settings.out_dir
        if entity.phase != PUBLISHED and not unchanged:
            full = isinstance(work, OptionsWork) or (
                isinstance(work, PagedWork) and work.window.is_full
            )
            version = f"{self.run_id}-details" if details else self.run_id
            stats = await asyncio.to_thread(
                merge_snapshot, out, entity.target, entity.output.staging, version,
                full=full, now=self.started_at, gone=gone,
            )  # fmt: skip
            await asyncio.to_thread(publish_version, out, entity.target, version)
            entity.result.inserted, entity.result.updated = stats.inserted, stats.updated
            entity.result.deleted, entity.result.duplicates_removed = (
                stats.deleted,
                stats.duplicates,
            )
            entity.result.snapshot_rows = stats.rows
            if self.store is not None and isinstance(work, PagedWork) and work.schema.modify_filter:
                self.store.set_watermark(self.scope, entity.name, work.window.modify_to)
            entity.phase = PUBLISHED
            self._save(entity)
        await asyncio.to_thread(
            append_changes, out, entity.target, entity.output.staging, entity.version,
            self.started_at,
        )  # fmt: skip
        entity.finished = True
        assert self.job is not None
        if not details:
            mark_done(self.store, self.scope, self.job, entity.name)
        if self.store is not None:
            self.store.delete_checkpoint(self.scope, entity.name)
        entity.spool.remove()
        entity.output.remove()
        if isinstance(work, PagedWork):
            self._queue_details(entity.name)  # its details are fetched after its list
        snapshot = out / entity.target
        entity.result.files = sorted(str(p.relative_to(out)) for p in snapshot.glob("*.parquet"))
        entity.result.remaining = 0
        entity.result.status = "complete"
        self.progress.entity(entity.name).state = "done"
        self.progress.event(
            self.clock.monotonic(), "entity-done", entity=entity.name,
            rows=entity.result.rows, pages=entity.result.pages,
        )  # fmt: skip
        await self._notify()

    def _learn_lookup_ids(self, lookups: _Entity) -> None:
        """Each lookup's options are one request: the Ids come from the lookups' rows."""
        options = self._entities.get(OPTIONS_ENTITY)
        if options is not None:
            self._learn_lookup_ids_from(options, lookups.output.staging)

    def _learn_lookup_ids_from(self, options: _Entity, directory: Path) -> None:
        assert isinstance(options.work, OptionsWork)
        ids: list[int] = []
        for path in sorted(directory.glob("*.parquet")):
            table = pq.read_table(path)
            if DELETED_AT in table.column_names:  # a snapshot keeps deleted lookups, marked
                table = table.filter(pc.is_null(table.column(DELETED_AT)))
            ids += [int(v) for v in table.column("Id").to_pylist() if v is not None]
        options.work.set_ids(ids)
        self._save(options)
        options.wake()

    # -- the run --------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        return new_session(self.settings.base_url, self.settings.concurrency)

    def _client(self, session: aiohttp.ClientSession) -> ApiClient:
        return ApiClient.for_settings(
            self.settings,
            session,
            limiter=self.limiter,
            budget=self.counting,
            clock=self.clock,
            rng=self.rng,
            token_store=self.token_store,
        )

    async def probe(self) -> dict[str, EntityPlan]:
        """What is left of the job, per entity, at the cost of at most one request each.

        An entity whose Total is unknown gets its first page fetched and spooled: the next
        run replays it instead of fetching it again. Lookup options need no request: their
        count is the lookups' Total.
        """
        self.prepare()
        plans: dict[str, EntityPlan] = {}
        async with self._session() as session:
            client = self._client(session)
            for entity in self._entities.values():
                work = entity.work
                if not isinstance(work, PagedWork):
                    continue
                spooled = set(entity.spool.keys())
                total = work.walk.total
                if total is None and 1 in spooled:
                    total = _envelope_total(entity.spool.get(1))
                elif total is None:
                    path, params = work.request(1)
                    started = time.monotonic()
                    body = await client.get(path, params)
                    self.request_seconds.append(time.monotonic() - started)
                    entity.spool.put(1, body)
                    spooled.add(1)
                    total = _envelope_total(body)
                pages = pages_needed(total, work.walk.page_size)
                done = set(work.walk.done_pages) | spooled
                left = max(0, pages - len([p for p in done if p <= pages]))
                window = (
                    "full walk" if work.window.modify_from is None
                    else f"changed since {work.window.modify_from:%Y-%m-%d %H:%M:%S}"
                )  # fmt: skip
                if work.window.modify_from is None and not work.schema.modify_filter:
                    window = "full walk (the API cannot filter it by date)"
                plans[entity.name] = EntityPlan(entity.name, total, pages, left, window)
            options = self._entities.get(OPTIONS_ENTITY)
            if options is not None and isinstance(options.work, OptionsWork):
                ids = options.work.ids
                lookups = plans.get("lookups")
                count = len(ids) if ids is not None else (lookups.total if lookups else None)
                left_options: int | None = count
                if ids is not None:
                    left_options = len([i for i in ids if i not in options.work.done])
                plans[OPTIONS_ENTITY] = EntityPlan(
                    OPTIONS_ENTITY, count, count, left_options, "one request per lookup"
                )
            for entity in self._entities.values():
                if isinstance(entity.work, DetailWork):
                    plans[entity.name] = self._detail_plan(entity, plans.get(entity.target))
        self.requests_sent = self.counting.sent
        return plans

    def _detail_plan(self, entity: _Entity, listed: EntityPlan | None) -> EntityPlan:
        """The detail backlog: records of the snapshot still pending, plus (at most) every
        record this run's list window brings, less what is fetched but not merged yet."""
        assert isinstance(entity.work, DetailWork)
        backlog = set(pending_details(self.settings.out_dir, entity.target))
        backlog -= entity.work.done | entity.work.gone | set(entity.spool.keys())
        window = listed.total or 0 if listed is not None else 0
        left = len(backlog) + window
        note = "one request per new or changed record"
        if window:
            note += f" (at most; {window} in this run's list window)"
        return EntityPlan(entity.name, len(backlog) + window, None, left, note)

    async def run(self) -> RunResult:
        """Run the job's pending entities; API and data trouble ends up in the result
        (``error``), never as an exception: only bugs raise."""
        started = time.monotonic()
        self.progress.started = self.clock.monotonic()
        self.prepare()
        async with self._session() as session:
            client = self._client(session)
            try:
                for entity in self._entities.values():
                    await self._replay(entity)
                async with asyncio.TaskGroup() as group:
                    for entity in self._entities.values():
                        group.create_task(self._sink(entity))
                    # More fetchers than slots: one sleeping on a backoff leaves its slot.
                    for _ in range(self.settings.concurrency * 2):
                        group.create_task(self._fetcher(client))
            except BaseExceptionGroup as group_error:
                raise group_error.exceptions[0] from None
        results = {e.name: e.result for e in self._entities.values()}
        totals = {
            n: r.total or 0
            for n, r in results.items()
            if n != OPTIONS_ENTITY and r.status == "complete"
        }
        minimum = client.auth.fetches + minimum_requests(totals, self.settings.page_size)
        options = results.get(OPTIONS_ENTITY)
        if options is not None and options.status == "complete":
            minimum += options.total or 0
        return RunResult(
            run_id=self.run_id,
            job_id=self.job.job_id if self.job else self.run_id,
            resumed=self.resumed,
            started_at=self.started_at,
            finished_at=self.clock.now(),
            elapsed=time.monotonic() - started,
            requests=self.counting.sent,
            minimum_requests=minimum,
            entities=results,
            error=None if self._interrupted else self._stop,
            interrupted=self._interrupted,
        )
