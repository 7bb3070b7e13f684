"""Flat memory: peak RSS of ``twelvetwenty extract`` pulling 1,000,000 students.

Pages flow bytes -> Arrow -> Parquet row groups and nothing holds the entity whole, so the
extractor's peak resident memory must stay under 300 MB however many rows there are. The
extractor runs as its own process (``os.wait4`` reports its peak RSS); the simulator runs
in another, with no latency, so this is also the end-to-end throughput on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from benchmarks.sim_process import simulator_process

STUDENTS = 1_000_000
LIMIT_MB = 300.0


def main() -> int:
    args = ["--latency", "0", "--latency-jitter", "0", f"--rows=students={STUDENTS}"]
    with simulator_process(*args) as info, tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, TWELVETWENTY_API_KEY=info["api_key"])
        command = [
            sys.executable, "-m", "extractor", "extract", "--site", "bench",
            "--base-url", info["base_url"], "--out", out, "--entities", "students",
            "--log-format", "text", "--state", f"{out}/_bench_state.sqlite3",
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"extract failed with status {os.waitstatus_to_exitcode(status)}")
        return 1
    peak_mb = usage.ru_maxrss / 1024  # Linux reports kilobytes
    print(
        f"{STUDENTS:,} students in {elapsed:.1f} s ({STUDENTS / elapsed:,.0f} items/s end to end)"
    )
    print(
        f"peak RSS {peak_mb:.0f} MB vs limit {LIMIT_MB:.0f} MB: ratio {peak_mb / LIMIT_MB:.2f} "
        f"{'PASS' if peak_mb < LIMIT_MB else 'MISS'}"
    )
    return 0
