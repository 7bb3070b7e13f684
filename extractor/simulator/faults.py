"""Injected faults: what a flaky network and a busy API do to a client.

Each counted request on a fault route draws at most one fault, from one uniform draw laid
over the configured probabilities (so the kinds are exclusive and their rates exact), or
takes the next one from :meth:`FaultPlan.schedule` when a test wants a fault on a precise
request. How each kind reaches the client:

- ``429``/``500``: the API's JSON error, identical to a real refusal/crash;
- ``502``/``503``: a gateway's HTML page;
- ``reset``: the connection is aborted before any byte of a response
  (aiohttp clients raise ``ServerDisconnectedError``, a ``ClientConnectionError``);
- ``truncate``: the real response's headers, including its full ``Content-Length``, then
  half the body, then the connection closes (aiohttp raises ``ClientPayloadError``);
- ``slow``: the real response, body dribbled in ten pieces over ``slow_seconds``
  (a client with a read timeout times out; a patient one gets the right bytes, late).

A fault replaces the handler's answer (status faults and ``reset``) or how it is sent
(``truncate``, ``slow``); it never changes what the data model holds.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque

from aiohttp import web

from extractor.simulator.config import FAULT_KINDS, SimConfig

# Faults decided before the handler runs (they replace its answer).
REPLACING = frozenset({"429", "500", "502", "503", "reset"})
SLOW_PIECES = 10


class FaultPlan:
    """Decides which fault, if any, each request suffers."""

    def __init__(self, config: SimConfig) -> None:
        self._rng = random.Random(config.fault_seed)
        self._routes = config.fault_routes
        self._thresholds: list[tuple[float, str]] = []
        cumulative = 0.0
        for kind, p in config.fault_probabilities().items():
            if p > 0:
                cumulative += p
                self._thresholds.append((cumulative, kind))
        self._scheduled: deque[str | None] = deque()

    def schedule(self, *kinds: str | None) -> None:
        """Force the next requests' faults, in order (None = no fault for that request).

        Scheduled faults apply to fault routes only and take precedence over random draws.
        """
        for kind in kinds:
            if kind is not None and kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
            self._scheduled.append(kind)

    def draw(self, template: str) -> str | None:
        """The fault for one request on the route ``template``, or None."""
        if self._routes is not None and template not in self._routes:
            return None
        if self._scheduled:
            return self._scheduled.popleft()
        if not self._thresholds:
            return None
        x = self._rng.random()
        for threshold, kind in self._thresholds:
            if x < threshold:
                return kind
        return None


def abort_connection(request: web.BaseRequest) -> web.Response:
    """Drop the connection with no response; returns a response aiohttp cannot send."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)


def _copy_headers(out: web.StreamResponse, resp: web.Response, length: int) -> None:
    for name, value in resp.headers.items():
        if name.lower() != "content-length":
            out.headers[name] = value
    out.content_length = length


def _body_of(resp: web.Response) -> bytes:
    body = resp.body
    return bytes(body) if isinstance(body, bytes | bytearray) else b""


async def send_truncated(request: web.BaseRequest, resp: web.Response) -> web.StreamResponse:
    """Send ``resp``'s headers and half its body, then close the connection."""
    body = _body_of(resp)
    out = web.StreamResponse(status=resp.status, reason=resp.reason)
    _copy_headers(out, resp, len(body))
    try:
        await out.prepare(request)
        await out.write(body[: len(body) // 2])
    except ConnectionError:
        return out
    transport = request.transport
    if transport is not None:
        transport.close()  # close, not abort: flush the partial body first
    return out


async def send_slowly(
    request: web.BaseRequest, resp: web.Response, seconds: float
) -> web.StreamResponse:
    """Send ``resp`` whole, its body in pieces spread over ``seconds`` of real time."""
    body = _body_of(resp)
    out = web.StreamResponse(status=resp.status, reason=resp.reason)
    _copy_headers(out, resp, len(body))
    step = max(1, -(-len(body) // SLOW_PIECES))
    pieces = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    pause = seconds / len(pieces)
    try:
        await out.prepare(request)
        for piece in pieces:
            await asyncio.sleep(pause)
            await out.write(piece)
    except ConnectionError:
        pass  # the client gave up waiting; nothing left to send to
    return out
