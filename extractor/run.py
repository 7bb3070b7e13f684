"""The orchestration of one extraction: plan -> walk -> convert -> write -> publish.

Concurrency model: a fixed set of fetcher tasks pulls work from a scheduler; every request
they send goes through the client's single limiter (3 slots), so 3 requests are in flight
whenever 3 pages are claimable anywhere. There are more fetchers than slots so that a
fetcher sleeping on a backoff never leaves a slot idle.

Each entity has a sink task: fetched page bodies are queued to it, converted in batches on
a worker thread (CPU work off the event loop), recorded in the entity's PageWalk (which
decides whether the page's rows count) and written to that entity's new version. When the
walk is whole, the version is published with one atomic swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
import pyarrow as pa

from extractor.clock import Clock, SystemClock
from extractor.config import Settings
from extractor.core.pages import PageStatus, PageWalk, Receipt, minimum_requests
from extractor.errors import ExtractorError, SchemaError
from extractor.http.client import ApiClient, CountingBudget, RequestBudget, default_ssl_context
from extractor.http.limiter import Limiter, LocalLimiter
from extractor.progress import Progress
from extractor.records.convert import ConvertedBatch, Converter
from extractor.records.schema import EntitySchema, load_schemas
from extractor.sink.parquet import EntityOutput

BATCH_PAGES = 16  # pages converted together: fewer, larger conversions are faster
QUEUE_PAGES = 24  # fetched pages waiting per entity before fetchers pause (flat memory)
OPTIONS_ENTITY = "lookup-options"
_EMPTY_PAGE = b'{"PageSize":0,"PageNumber":1,"Total":0,"NumberOfPages":0,"Items":[]}'


@dataclass
class EntityResult:
    """What happened to one entity in this run."""

    name: str
    total: int | None = None
    pages: int = 0
    rows: int = 0
    files: list[str] = field(default_factory=list)
    requests: int = 0
    refetched_pages: int = 0
    total_changes: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    unknown_fields: list[str] = field(default_factory=list)
    status: str = "pending"  # complete, failed, stopped
    error: str | None = None


@dataclass
class RunResult:
    """The outcome of :func:`extract`."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    elapsed: float
    requests: int
    minimum_requests: int
    entities: dict[str, EntityResult]
    error: ExtractorError | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and all(e.status == "complete" for e in self.entities.values())


@dataclass
class _Work:
    """One request to make: a list page or a lookup's options."""

    entity: str
    page: int | None = None
    lookup_id: int | None = None


class _EntityRun:
    """One entity's walk, sink queue and output."""

    def __init__(
        self, name: str, schema: EntitySchema, output: EntityOutput, page_size: int
    ) -> None:
        self.name = name
        self.schema = schema
        self.output = output
        self.walk = PageWalk(page_size)
        # None in the queue means "wake up and look again" (new state, or the run stopped).
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(QUEUE_PAGES)
        self.converter = Converter(schema)
        self.receipts: list[Receipt] = []
        self.result = EntityResult(name)
        self.unreceived = 0  # claimed requests whose bodies the sink has not taken in yet
        self.failed = False

    def wake(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes its sink anyway
            self.queue.put_nowait(None)


class Extraction:
    """Runs one extraction with the given settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        progress: Progress | None = None,
        limiter: Limiter | None = None,
        budget: RequestBudget | None = None,
        schemas_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.progress = progress or Progress(log_format="text")
        self.limiter = limiter or LocalLimiter(settings.concurrency)
        self.counting = CountingBudget()
        self.budget = budget or self.counting
        self._schemas = load_schemas(schemas_dir)
        self.run_id = f"{self.clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self._entities: dict[str, _EntityRun] = {}
        self._options: _EntityRun | None = None
        self._options_pending: list[int] = []
        self._options_seen: set[int] = set()
        self._options_known = False  # every lookup Id is known (the lookups walk is done)
        self._changed = asyncio.Condition()
        self._stop: ExtractorError | None = None

    # -- set-up ---------------------------------------------------------------------------

    def _schema(self, name: str) -> EntitySchema:
        try:
            return self._schemas[name]
        except KeyError:
            raise SchemaError(f"no schema for {name} in schemas/") from None

    def _prepare(self) -> None:
        out, size = self.settings.out_dir, self.settings.page_size
        for name in self.settings.entities:
            output = EntityOutput(out, name, self.run_id)
            self._entities[name] = _EntityRun(name, self._schema(name), output, size)
            self.progress.entity(name)
        if "lookups" in self._entities:
            output = EntityOutput(out, OPTIONS_ENTITY, self.run_id)
            schema = self._schema(OPTIONS_ENTITY)
            self._options = _EntityRun(OPTIONS_ENTITY, schema, output, size)
            self.progress.entity(OPTIONS_ENTITY)

    def _all_runs(self) -> list[_EntityRun]:
        runs = list(self._entities.values())
        if self._options is not None:
            runs.append(self._options)
        return runs

    # -- scheduling -----------------------------------------------------------------------

    def _next_work(self) -> _Work | None:
        """Claim the next request to make, first pages first (they reveal the totals)."""
        runs = [r for r in self._entities.values() if not r.failed]
        for first_only in (True, False):
            for run in runs:
                if first_only and run.walk.total is not None:
                    continue
                pages = run.walk.claim(1)
                if pages:
                    run.unreceived += 1
                    return _Work(run.name, page=pages[0])
        if self._options is not None and self._options_pending:
            self._options.unreceived += 1
            return _Work(OPTIONS_ENTITY, lookup_id=self._options_pending.pop(0))
        return None

    def _walk_done(self, run: _EntityRun) -> bool:
        """Nothing of ``run`` is left to fetch or to take in."""
        if run.unreceived:
            return False
        if run is self._options:
            return self._options_known and not self._options_pending
        return run.walk.all_fetched and not run.walk.in_flight

    def _fetching_done(self) -> bool:
        return all(r.failed or self._walk_done(r) for r in self._all_runs())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _fetcher(self, client: ApiClient) -> None:
        while True:
            async with self._changed:
                while True:
                    if self._stop is not None or self._fetching_done():
                        return
                    work = self._next_work()
                    if work is not None:
                        break
                    await self._changed.wait()
            try:
                await self._do(client, work)
            except ExtractorError as exc:
                self._fail(work.entity, exc)
            await self._notify()

    async def _do(self, client: ApiClient, work: _Work) -> None:
        if work.page is not None:
            run = self._entities[work.entity]
            params = {"PageSize": run.walk.page_size, "PageNumber": work.page}
            body = await client.get(run.schema.path, params)
            key = work.page
        else:
            assert work.lookup_id is not None and self._options is not None
            run = self._options
            body = await client.get(f"/api/v2/lookups/{work.lookup_id}/options")
            key = work.lookup_id
        run.result.requests += 1
        self.progress.requests = self.counting.sent
        await run.queue.put((key, body))

    def _fail(self, entity: str, exc: ExtractorError) -> None:
        """Stop the whole run: a failure that survived the client's retries is not local."""
        if self._stop is None:
            self._stop = exc
        run = self._entities.get(entity) or self._options
        if run is not None and run.name == entity:
            run.failed = True
            run.result.error = str(exc)
        for r in self._all_runs():
            r.wake()

    # -- sinks ----------------------------------------------------------------------------

    async def _sink(self, run: _EntityRun) -> None:
        """Convert, record and write one entity's pages until its walk is whole."""
        try:
            while self._stop is None and not self._walk_done(run):
                item = await run.queue.get()
                if item is None:
                    continue
                batch = [item]
                # Adaptive batches: take what has already arrived, never wait for more.
                # When fetching outpaces conversion the queue fills and batches grow
                # (fewer, faster conversions); at the API's pace each page is converted
                # as it lands, so nothing is left to convert when the last one arrives.
                while len(batch) < BATCH_PAGES and not run.queue.empty():
                    nxt = run.queue.get_nowait()
                    if nxt is not None:
                        batch.append(nxt)
                await self._write_pages(run, batch)
                await self._notify()
        except ExtractorError as exc:
            self._fail(run.name, exc)
        await self._finish(run)

    async def _write_pages(self, run: _EntityRun, pages: list[tuple[int, bytes]]) -> None:
        if run is self._options:
            await self._write_options(run, pages)
            return
        converted = await asyncio.to_thread(run.converter.convert_pages, [b for _, b in pages])
        keep: list[pa.RecordBatch] = []
        offset = 0
        for (page, _body), meta in zip(pages, converted.pages, strict=True):
            run.unreceived -= 1
            outcome = run.walk.record(
                page,
                total=meta.total,
                item_count=meta.items,
                page_size=meta.page_size,
                number_of_pages=meta.number_of_pages,
            )
            if outcome.status is PageStatus.ACCEPTED and outcome.receipt is not None:
                run.receipts.append(outcome.receipt)
                keep.append(converted.record_batch.slice(offset, meta.items))
                run.result.pages += 1
            else:
                run.result.refetched_pages += 1
            run.result.refetched_pages += len(outcome.invalidated)
            offset += meta.items
        rows = 0
        for chunk in keep:
            rows += chunk.num_rows
            await asyncio.to_thread(run.output.write, chunk)
        self._absorb(run, converted, rows)
        if run.name == "lookups" and self._options is not None:
            self._queue_options(keep, done=self._walk_done(run))

    def _queue_options(self, batches: list[pa.RecordBatch], *, done: bool) -> None:
        """Each lookup's options are one more request, known once its lookup row arrives."""
        assert self._options is not None
        for batch in batches:
            for value in batch.column(batch.schema.get_field_index("Id")).to_pylist():
                if value is not None and value not in self._options_seen:
                    self._options_seen.add(int(value))
                    self._options_pending.append(int(value))
        if done:
            self._options_known = True
            self._options.wake()

    async def _write_options(self, run: _EntityRun, pages: list[tuple[int, bytes]]) -> None:
        """Options come as bare arrays, one per lookup: wrap, convert, tag with LookupId."""
        for lookup_id, body in pages:
            run.unreceived -= 1
            converted = await asyncio.to_thread(run.converter.convert_array, body)
            batch = converted.record_batch
            ids = pa.array([lookup_id] * batch.num_rows, pa.int64())
            schema = batch.schema.insert(0, pa.field("LookupId", pa.int64(), nullable=False))
            tagged = pa.RecordBatch.from_arrays([ids, *batch.columns], schema=schema)
            await asyncio.to_thread(run.output.write, tagged)
            run.result.pages += 1
            self._absorb(run, converted, batch.num_rows)

    def _absorb(self, run: _EntityRun, converted: ConvertedBatch, rows: int) -> None:
        run.result.rows += rows
        for problem in converted.problems:
            key = f"{problem.field}: {problem.kind}"
            run.result.problems[key] = run.result.problems.get(key, 0) + problem.count
        for name in converted.extra_fields:
            if name not in run.result.unknown_fields:
                run.result.unknown_fields.append(name)
        progress = self.progress.entity(run.name)
        progress.pages_done = run.result.pages
        if run is self._options:
            progress.pages_total = len(self._options_seen) if self._options_known else None
        else:
            progress.pages_total = run.walk.page_count
        progress.rows = run.result.rows
        progress.problems = sum(run.result.problems.values())
        progress.state = "walking"
        self.progress.requests = self.counting.sent
        self.progress.tick(self.clock.monotonic())

    async def _finish(self, run: _EntityRun) -> None:
        if self._stop is not None or run.failed:
            run.output.abort()
            run.result.status = "failed" if run.failed else "stopped"
            self.progress.entity(run.name).state = run.result.status
            return
        if run.output.rows == 0:
            # An empty entity still gets a file: readers find the columns, and 0 rows.
            empty = await asyncio.to_thread(run.converter.convert_pages, [_EMPTY_PAGE])
            await asyncio.to_thread(run.output.write_empty, empty.record_batch.schema)
        files = await asyncio.to_thread(run.output.finish)
        run.walk.mark_durable(run.receipts)
        await asyncio.to_thread(run.output.publish)
        run.result.files = [str(p.relative_to(self.settings.out_dir)) for p in files]
        run.result.total = run.walk.total if run is not self._options else run.result.rows
        run.result.total_changes = run.walk.total_changes
        run.result.status = "complete"
        self.progress.entity(run.name).state = "done"
        self.progress.event(
            self.clock.monotonic(), "entity-done", entity=run.name, rows=run.result.rows,
            pages=run.result.pages,
        )  # fmt: skip

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> RunResult:
        """Extract every configured entity; never raises for API or data trouble (the
        result carries the error), only for bugs."""
        started_at = self.clock.now()
        started = time.monotonic()
        self.progress.started = self.clock.monotonic()
        self._prepare()
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency, ssl=default_ssl_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            client = ApiClient(
                session,
                self.settings.base_url,
                self.settings.api_key,
                site=self.settings.site,
                limiter=self.limiter,
                budget=self.budget,
                clock=self.clock,
                rng=self.rng,
                timeout=self.settings.request_timeout,
            )
            try:
                async with asyncio.TaskGroup() as group:
                    for run in self._all_runs():
                        group.create_task(self._sink(run))
                    # More fetchers than slots: one sleeping on a backoff leaves its slot.
                    for _ in range(self.settings.concurrency * 2):
                        group.create_task(self._fetcher(client))
            except BaseExceptionGroup as group_error:
                raise group_error.exceptions[0] from None
        results = {r.name: r.result for r in self._all_runs()}
        totals = {n: r.total or 0 for n, r in results.items() if n != OPTIONS_ENTITY}
        minimum = client.auth.fetches + minimum_requests(totals, self.settings.page_size)
        if self._options is not None:
            minimum += len(self._options_seen)
        return RunResult(
            run_id=self.run_id,
            started_at=started_at,
            finished_at=self.clock.now(),
            elapsed=time.monotonic() - started,
            requests=self.counting.sent,
            minimum_requests=minimum,
            entities=results,
            error=self._stop,
        )
