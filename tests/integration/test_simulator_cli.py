"""``twelvetwenty simulate`` as a user (or the demo) runs it: a separate process."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from simulator_support import TOKEN_PATH, bearer

from extractor.cli import main
from extractor.simulator.config import SimConfig

REPO = Path(__file__).resolve().parents[2]
FAST = ["--port", "0", "--latency", "0", "--latency-jitter", "0", "--scale", "0.01"]


@asynccontextmanager
async def simulate(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    """Start ``python -m extractor simulate --json ...``; yield it and its first line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "extractor",
        "simulate",
        "--json",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        yield proc, json.loads(line)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


def _is_file(path: Path) -> bool:
    return path.is_file()


async def _stop(proc: asyncio.subprocess.Process, signum: int) -> tuple[int, str, str]:
    proc.send_signal(signum)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _fetch(base_url: str, api_key: str, ssl_ctx: ssl.SSLContext | None = None) -> int:
    connector = aiohttp.TCPConnector(ssl=ssl_ctx) if ssl_ctx else None
    async with aiohttp.ClientSession(base_url, connector=connector) as session:
        async with session.get(TOKEN_PATH, params={"key": api_key}) as resp:
            assert resp.status == 200
            token = await resp.text()
        async with session.get("/api/v2/students", headers=bearer(token)) as resp:
            assert resp.status == 200
            return int((await resp.json())["Total"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_json_line_then_serves_until_signalled(signum: int) -> None:
    async with simulate(*FAST, "--rows", "students=77") as (proc, first):
        assert set(first) == {"base_url", "api_key", "ca_file"}
        assert first["base_url"].startswith("http://127.0.0.1:")
        assert first["ca_file"] is None
        assert await _fetch(first["base_url"], first["api_key"]) == 77
        status, out, err = await _stop(proc, signum)
    assert status == 0
    assert out == ""  # nothing after the JSON line on stdout
    assert "Traceback" not in err
    assert "stopped after 2 requests" in err
    assert first["api_key"] not in err


async def test_tls_serves_https_with_a_ca_the_client_can_trust() -> None:
    async with simulate(*FAST, "--tls", "--api-key", "demo-key") as (proc, first):
        assert first["base_url"].startswith("https://")
        assert first["api_key"] == "demo-key"
        ca_file = Path(first["ca_file"])
        assert _is_file(ca_file)
        ctx = ssl.create_default_context(cafile=str(ca_file))
        assert await _fetch(first["base_url"], first["api_key"], ctx) > 0
        status, _, err = await _stop(proc, signal.SIGTERM)
    assert status == 0, err
    assert not _is_file(ca_file)  # the temporary CA goes away with the process


async def test_tls_dir_keeps_the_ca(tmp_path: Path) -> None:
    async with simulate(*FAST, "--tls-dir", str(tmp_path)) as (proc, first):
        assert Path(first["ca_file"]).parent == tmp_path
        status, _, _ = await _stop(proc, signal.SIGTERM)
    assert status == 0
    assert (tmp_path / Path(first["ca_file"]).name).is_file()


async def test_human_output_has_url_key_and_curl_example() -> None:
    """Without --json: the URL, the key and a ready curl example, then serve."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "extractor",
        "simulate",
        *FAST,
        "--api-key",
        "k123",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        status, out, err = await _stop(proc, signal.SIGINT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    text = first.decode() + out
    assert status == 0, err
    assert "listening on http://127.0.0.1:" in text
    assert "API key: k123" in text
    assert "curl" in text and "generateAuthenticationToken?key=k123" in text


def test_every_knob_has_a_documented_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "extractor", "simulate", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    help_text = result.stdout
    internal = {"rows", "fault_routes"}  # --rows ENTITY=N; fault_routes is programmatic only
    for field in fields(SimConfig):
        if field.name in internal:
            continue
        flag = "--" + field.name.replace("_", "-")
        assert flag in help_text, flag
    for flag in ("--rows", "--tls", "--tls-dir", "--json", "--host", "--port", "--fault-rate"):
        assert flag in help_text


@pytest.mark.parametrize(
    "args",
    [
        ["--rows", "unicorns=5"],
        ["--rows", "students"],
        ["--p-500", "2"],
        ["--latency", "-1"],
        ["--fault-rate", "0.9", "--p-slow", "0.5"],
    ],
)
def test_bad_settings_exit_2_without_traceback(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main(["simulate", *FAST, *args])
    except SystemExit as exc:  # argparse refuses before run()
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in captured.err
    assert captured.out == ""


async def test_a_taken_port_is_a_config_error() -> None:
    async with simulate(*FAST) as (proc, first):
        port = first["base_url"].rsplit(":", 1)[1]
        taken = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "extractor",
            "simulate",
            *FAST,
            "--port",
            port,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(taken.communicate(), timeout=15)
        await _stop(proc, signal.SIGTERM)
    assert taken.returncode == 2
    assert b"cannot listen on 127.0.0.1:" + port.encode() in err
    assert b"Traceback" not in err
    assert out == b""
