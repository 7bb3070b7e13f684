"""The simulated 12Twenty API as an aiohttp application: one school, one :class:`Simulator`.

Every request goes through one catch-all handler (see :mod:`routes` for why), in this
order, which is the order that makes the ledger and the limits faithful:

1. ``/_sim/*`` routes are answered at once: no auth, no limits, no faults, not counted.
2. The arrival is counted (total, UTC day, in flight) and checked against the limits:
   too many in flight or the day spent -> 429 immediately, with no latency.
3. Admitted requests wait out :meth:`Simulator.pause` (tests), draw a fault, prepare the
   answer, and wait out the rest of the configured latency (the response time). Status faults and resets replace the answer; ``truncate`` and
   ``slow`` change how the real answer is sent.
4. The answer itself: unknown route 404, wrong method 405, the token route (key check),
   then ``Authorization: Bearer`` (401), then list/detail/options/documentation.

A request stops occupying a concurrency slot when its handler returns, which is before
aiohttp writes an ordinary response: a client that sends its next request only after
reading a response can never be refused for a request the server still counts.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import orjson
from aiohttp import web

from extractor.clock import Clock, SystemClock
from extractor.errors import ConfigError
from extractor.simulator.config import SimConfig
from extractor.simulator.data import ListFilter, SchoolData
from extractor.simulator.docs import render_documentation
from extractor.simulator.faults import (
    REPLACING,
    FaultPlan,
    abort_connection,
    send_slowly,
    send_truncated,
)
from extractor.simulator.ledger import Ledger
from extractor.simulator.limits import Limiter
from extractor.simulator.query import QueryError, lower_params, parse_list_query
from extractor.simulator.responses import (
    JSON,
    UNAUTHORIZED,
    gateway_error,
    json_body,
    json_error,
    server_error,
    too_many_requests,
)
from extractor.simulator.routes import Kind, Route, resolve
from extractor.simulator.tokens import TokenStore, key_matches

NOT_FOUND = "No HTTP resource was found that matches the request URI."


class Simulator:
    """One simulated school: its data, clock, limits, tokens, faults and ledger.

    ``clock`` drives token expiry and the UTC day of the quota (a ``ManualClock`` in
    tests); latency and slow faults use real time. ``data`` defaults to a
    :class:`SchoolData` built from the config at the clock's "now"; ``rng`` makes tokens
    reproducible.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: Clock | None = None,
        data: SchoolData | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config = config or SimConfig()
        self.clock = clock or SystemClock()
        if data is None:
            try:
                data = SchoolData(
                    seed=config.seed, scale=config.scale, rows=config.rows, now=self.clock.now()
                )
            except ValueError as exc:
                raise ConfigError(f"simulator data: {exc}") from exc
        self.data = data
        self.ledger = Ledger()
        self.limiter = Limiter(
            self.clock, max_concurrency=config.max_concurrency, daily_limit=config.daily_limit
        )
        self.tokens = TokenStore(
            self.clock, lifetime=timedelta(seconds=config.token_lifetime), rng=rng
        )
        self.faults = FaultPlan(config)
        self._jitter = random.Random(config.fault_seed ^ 0x5EED)
        self._entities = frozenset(data.entities)
        self._modify_dated = frozenset(e for e in data.entities if data.has_modify_date(e))
        self._gate: asyncio.Event | None = None
        self._docs = render_documentation(
            data.entities,
            token_lifetime=config.token_lifetime,
            max_concurrency=config.max_concurrency,
            daily_limit=config.daily_limit,
        )
        self.app = web.Application()
        self.app[SIMULATOR_KEY] = self
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.app.on_shutdown.append(self._release_on_shutdown)

    # -- test helpers --------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The school's API key (never log it)."""
        return self.config.api_key

    @property
    def in_flight(self) -> int:
        """Counted requests whose response is not ready yet (refused ones included)."""
        return self.limiter.in_flight

    def pause(self) -> None:
        """Hold every admitted request (inside its concurrency slot) until :meth:`resume`."""
        if self._gate is None:
            self._gate = asyncio.Event()

    def resume(self) -> None:
        """Release the requests held by :meth:`pause`."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def issue_token(self) -> str:
        """A valid token without a (counted) token request."""
        return self.tokens.issue()

    def expire_tokens(self) -> None:
        """Expire every issued token now."""
        self.tokens.expire()

    async def _release_on_shutdown(self, _app: web.Application) -> None:
        self.resume()

    # -- the pipeline --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = resolve(request.path, self._entities)
        if route.simulator_only:
            return await self._simulator_route(route, request)
        limiter = self.limiter
        verdict = limiter.enter()
        self.ledger.arrival(limiter.day.isoformat(), limiter.in_flight)
        status = 0
        try:
            if verdict is not None:
                self.ledger.refused[verdict.value] += 1
                status = 429
                return too_many_requests(self.config.retry_after)
            resp, status = await self._admitted(route, request)
            return resp
        finally:
            limiter.leave()
            self.ledger.requests[(route.template, status)] += 1

    def _delay(self) -> float:
        jitter = self.config.latency_jitter
        return self.config.latency + (self._jitter.uniform(0.0, jitter) if jitter else 0.0)

    async def _admitted(self, route: Route, request: web.Request) -> tuple[web.StreamResponse, int]:
        """Answer an admitted request; returns the response and the status to record.

        The configured latency is the response time, as a client measures it: the answer
        is prepared first and only the rest of the latency is slept, so the time spent
        rendering a page is part of the latency rather than added to it.
        """
        if self._gate is not None:
            await self._gate.wait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = self._delay()
        fault = self.faults.draw(route.template)
        if fault is not None:
            self.ledger.faults[fault] += 1
        resp = None if fault in REPLACING else self._answer(route, request)
        remaining = delay - (loop.time() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        if resp is None:
            assert fault is not None
            return self._fault_response(fault, request)
        if fault == "truncate":
            return await send_truncated(request, resp), resp.status
        if fault == "garble" and isinstance(resp.body, bytes):
            half = len(resp.body) // 2
            garbled = resp.body[:half] + b"\x00" * (len(resp.body) - half)
            return web.Response(
                body=garbled, status=resp.status, content_type=resp.content_type
            ), resp.status
        if fault == "slow":
            return await send_slowly(request, resp, self.config.slow_seconds), resp.status
        return resp, resp.status

    def _fault_response(self, fault: str, request: web.Request) -> tuple[web.StreamResponse, int]:
        if fault == "reset":
            return abort_connection(request), 0
        if fault == "429":
            return too_many_requests(self.config.retry_after), 429
        if fault == "500":
            return server_error(), 500
        status = int(fault)
        return gateway_error(status), status

    # -- the API -------------------------------------------------------------------------

    def _answer(self, route: Route, request: web.Request) -> web.Response:
        kind = route.kind
        if kind is Kind.UNMATCHED:
            return json_error(404, NOT_FOUND)
        if request.method != "GET":
            return json_error(
                405, "The requested resource does not support this method.", {"Allow": "GET"}
            )
        if kind is Kind.TOKEN:
            return self._token(request)
        if not self._authorized(request):
            return json_error(401, UNAUTHORIZED)
        entity = route.entity or ""
        if kind is Kind.LIST:
            return self._list(entity, request)
        if kind is Kind.DETAIL:
            assert route.id is not None
            body = self.data.detail(entity, route.id)
            if body is None:
                return json_error(404, f"No {entity} record with Id {route.id}.")
            self.ledger.details[entity] += 1
            return json_body(body)
        if kind is Kind.OPTIONS:
            assert route.id is not None
            body = self.data.lookup_options(route.id)
            if body is None:
                return json_error(404, f"No lookup with Id {route.id}.")
            return json_body(body)
        return web.Response(body=self._docs, content_type="text/html")

    def _token(self, request: web.Request) -> web.Response:
        key = lower_params(request.query.items()).get("key")
        if not key_matches(key, self.config.api_key):
            return json_error(401, "Invalid API key.")
        token = self.tokens.issue()
        self.ledger.tokens_issued += 1
        if self.config.token_format == "json":
            return json_body(orjson.dumps(token))
        return web.Response(text=token, content_type="text/plain")

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if header is None:
            return False
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and self.tokens.is_valid(token.strip())

    def _list(self, entity: str, request: web.Request) -> web.Response:
        try:
            query = parse_list_query(
                lower_params(request.query.items()),
                entity=entity,
                has_modify_date=entity in self._modify_dated,
            )
            flt = ListFilter(query.modify_from, query.modify_to, query.year, query.entity_type_id)
            body = self.data.list_page(entity, query.page_number, query.page_size, flt)
        except (QueryError, ValueError) as exc:
            return json_error(400, f"The request is invalid. {exc}")
        self.ledger.pages[entity] += 1
        return json_body(body)

    # -- simulator-only routes -----------------------------------------------------------

    async def _simulator_route(self, route: Route, request: web.Request) -> web.Response:
        if route.kind is Kind.LEDGER:
            if request.method != "GET":
                return json_error(405, "GET only", {"Allow": "GET"})
            return json_body(orjson.dumps(self.snapshot()))
        if request.method != "POST":
            return json_error(405, "POST only", {"Allow": "POST"})
        return await self._mutate(request)

    def snapshot(self) -> dict[str, object]:
        """The ledger plus the live limiter state, as served at ``/_sim/ledger``."""
        out: dict[str, object] = dict(self.ledger.to_json())
        out["in_flight"] = self.limiter.in_flight
        out["day"] = self.limiter.day.isoformat()
        out["used_today"] = self.limiter.used_today
        out["daily_limit"] = self.limiter.daily_limit
        return out

    async def _mutate(self, request: web.Request) -> web.Response:
        """``POST /_sim/mutate {"entity", "modify", "add", "delete"}`` -> touched Ids."""
        try:
            spec = orjson.loads(await request.read())
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            entity = spec.get("entity")
            if entity not in self._entities:
                raise ValueError(f"unknown entity {entity!r}")
            counts = {k: spec.get(k, 0) for k in ("modify", "add", "delete")}
            if not all(type(v) is int for v in counts.values()):
                raise ValueError("modify, add and delete must be integers")
            result = self.data.mutate(entity, **counts, now=self.clock.now())
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return json_error(400, str(exc))
        body = {
            "modified": list(result.modified),
            "added": list(result.added),
            "deleted": list(result.deleted),
        }
        return web.Response(body=orjson.dumps(body), content_type=JSON)


# Where the Simulator is kept on its web.Application (for code holding only the app).
SIMULATOR_KEY: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)
