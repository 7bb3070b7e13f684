"""Serving a :class:`Simulator` on a real socket, for tests, benchmarks and the CLI.

Clients under test must meet the simulator over a real TCP (or TLS) connection: that is
where resets, truncated bodies and slow reads actually happen. ``serve`` binds
127.0.0.1 port 0 by default so parallel tests never collide, and tears down in a bounded
time even when responses are still being dribbled.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from extractor.clock import Clock
from extractor.errors import ConfigError
from extractor.simulator.app import Simulator
from extractor.simulator.config import SimConfig
from extractor.simulator.data import SchoolData

# Addresses that mean "every interface": reachable locally through loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A simulator listening on a socket."""

    sim: Simulator
    base_url: str  # e.g. "http://127.0.0.1:41234", no trailing slash
    host: str
    port: int

    @property
    def api_key(self) -> str:
        """The school's API key (never log it)."""
        return self.sim.api_key

    def url(self, path: str) -> str:
        """``base_url`` + ``path`` (which starts with "/")."""
        return self.base_url + path


def base_url(host: str, port: int, *, tls: bool) -> str:
    """The URL a local client uses to reach ``host:port``."""
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


@asynccontextmanager
async def serve(
    config: SimConfig | None = None,
    *,
    clock: Clock | None = None,
    ssl_context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    data: SchoolData | None = None,
    rng: random.Random | None = None,
    shutdown_timeout: float = 1.0,
) -> AsyncIterator[RunningSimulator]:
    """Run a new :class:`Simulator` on ``host:port`` (HTTPS with ``ssl_context``).

    Port 0 picks a free port; the chosen one is in the result. A port that cannot be bound
    is a :class:`ConfigError`. On exit, held requests are released and handlers still
    running after ``shutdown_timeout`` seconds are cancelled.
    """
    sim = Simulator(config, clock=clock, data=data, rng=rng)
    runner = web.AppRunner(
        sim.app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:  # port taken, address not local, ...
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        bound_port = int(runner.addresses[0][1])
        url = base_url(host, bound_port, tls=ssl_context is not None)
        yield RunningSimulator(sim=sim, base_url=url, host=host, port=bound_port)
    finally:
        await runner.cleanup()
