"""A simulator in its own process, as benchmarks want it.

A real API's CPU is not the client's: running the simulator in a separate process keeps
its work off the extractor's event loop and core, so a benchmark measures the extractor.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def simulator_process(*args: str) -> Iterator[dict[str, Any]]:
    """Start ``twelvetwenty simulate --json --port 0 ARGS``; yields its announcement."""
    command = [sys.executable, "-m", "extractor", "simulate", "--json", "--port", "0", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator did not start: {' '.join(command)}")
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sim_ledger(base_url: str) -> dict[str, Any]:
    """The simulator's ledger (``GET /_sim/ledger``: not counted, no auth)."""
    import urllib.request

    with urllib.request.urlopen(f"{base_url}/_sim/ledger", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data
