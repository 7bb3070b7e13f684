"""Walking at the limit: wall time against the latency bound, requests against the minimum.

With a fixed simulated latency L and 3 requests allowed in flight, no client can fetch P
pages faster than P x L / 3. The extractor must come within 10% of that bound
(wall / bound <= 1.10) while spending exactly one request per page plus the token
(requests == P + 1). The simulator runs in its own process (a real API's CPU is not ours).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.sim_process import sim_ledger, simulator_process
from extractor.config import Secret, Settings
from extractor.progress import Progress
from extractor.run import Extraction

LATENCY = 0.05
TARGET = 1.10
# 180 + 60 + 60 pages: enough that the fixed costs (the token request, each entity's
# first page before its others can be fanned out, the final publish) weigh ~2%, not ~6%.
ROWS = {"students": 90_000, "companies": 30_000, "contacts": 30_000}


async def _extract(base_url: str, api_key: str, out: Path) -> tuple[float, int, int, int]:
    settings = Settings(
        site="bench",
        base_url=base_url,
        api_key=Secret(api_key),
        out_dir=out,
        entities=tuple(ROWS),
    )
    progress = Progress(log_format="text", interval=1e9)
    started = time.perf_counter()
    result = await Extraction(settings, progress=progress, rng=random.Random(1)).run()
    wall = time.perf_counter() - started
    if not result.complete:
        raise RuntimeError(f"extraction failed: {result.error}")
    pages = sum(e.pages for e in result.entities.values())
    return wall, pages, result.requests, result.minimum_requests


async def _bare(base_url: str, api_key: str, pages: dict[str, int]) -> float:
    """The same pages fetched by a bare aiohttp loop at 3 in flight (nothing converted,
    nothing written): what this machine and the simulator allow any client."""
    async with aiohttp.ClientSession() as session:
        token_url = f"{base_url}/api/client/generateAuthenticationToken"
        async with session.get(token_url, params={"key": api_key}) as resp:
            headers = {"Authorization": f"Bearer {await resp.text()}"}
        todo = [(e, p) for e, n in pages.items() for p in range(1, n + 1)]

        async def worker() -> None:
            while todo:
                entity, page = todo.pop()
                params = {"PageSize": 500, "PageNumber": page}
                async with session.get(
                    f"{base_url}/api/v2/{entity}", params=params, headers=headers
                ) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(3)))
        return time.perf_counter() - started


def main() -> int:
    rows = [f"--rows={name}={count}" for name, count in ROWS.items()]
    args = ["--latency", str(LATENCY), "--latency-jitter", "0", *rows]
    with simulator_process(*args) as info, tempfile.TemporaryDirectory() as tmp:
        wall, pages, requests, minimum = asyncio.run(
            _extract(info["base_url"], info["api_key"], Path(tmp))
        )
        ledger = sim_ledger(info["base_url"])
        per_entity = {name: -(-count // 500) for name, count in ROWS.items()}
        bare = asyncio.run(_bare(info["base_url"], info["api_key"], per_entity))
    bound = pages * LATENCY / 3
    ratio = wall / bound
    print(f"pages {pages}, latency {LATENCY * 1000:.0f} ms, 3 in flight")
    print(
        f"requests used {requests} (server saw {ledger['total']}), "
        f"minimum pages + 1 = {pages + 1}: {'PASS' if requests == pages + 1 == minimum else 'MISS'}"
    )
    print(f"max in flight seen by the server: {ledger['max_in_flight']}")
    print(
        f"wall {wall:.2f} s vs bound {bound:.2f} s (pages x latency / 3): "
        f"ratio {ratio:.3f} (limit {TARGET}) {'PASS' if ratio <= TARGET else 'MISS'}"
    )
    print(
        f"for scale: a bare aiohttp loop over the same pages (no token wait, no conversion, "
        f"no files) takes {bare:.2f} s: ratio {bare / bound:.3f}"
    )
    return 0
