"""Running the ``twelvetwenty`` command as a separate process against a simulator served
by the test's event loop (so the loop must keep running while the process works)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from extractor.simulator.server import RunningSimulator


@dataclass
class Completed:
    status: int
    stdout: str
    stderr: str


def cli_env(running: RunningSimulator, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["TWELVETWENTY_API_KEY"] = running.api_key
    env.update(extra)
    return env


def extract_args(running: RunningSimulator, out: Path, state: Path, *more: str) -> list[str]:
    return [
        "extract", "--site", "testschool", "--base-url", running.base_url,
        "--out", str(out), "--state", str(state), "--log-format", "json", *more,
    ]  # fmt: skip


async def start(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "extractor", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def run_cli(args: list[str], env: dict[str, str], within: float = 120) -> Completed:
    proc = await start(args, env)
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode(), err.decode())
