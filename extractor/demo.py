"""``make demo``: a real extraction from a simulated school over verified TLS.

1. Starts ``twelvetwenty simulate --tls --json`` (a test CA made on the spot) and reads
   its base URL, API key and CA file from its first line.
2. Runs ``twelvetwenty extract`` against it exactly as a user would: the key in
   $TWELVETWENTY_API_KEY, the CA trusted through $SSL_CERT_FILE, output in ./lake.
3. Queries the result with DuckDB: students per graduation year.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LAKE = Path("lake")


def start_simulator(tls_dir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    command = [
        sys.executable, "-m", "extractor", "simulate", "--tls", "--tls-dir", str(tls_dir),
        "--json", "--port", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise SystemExit(f"demo: the simulator did not start (exit {proc.returncode})")
    return proc, json.loads(line)


def query(lake: Path) -> None:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - make demo installs the dev extras
        print("(install duckdb to see the query: pip install duckdb)")
        return
    sql = f"""
        SELECT GraduationYearId AS year, count(*) AS students,
               count(*) FILTER (WHERE IsAlumni) AS alumni
        FROM read_parquet('{lake}/students/**/*.parquet', hive_partitioning=true,
                          union_by_name=true)
        GROUP BY year ORDER BY year
    """
    joined = f"""
        SELECT l.Name AS lookup, o.Name AS program, count(*) AS students
        FROM read_parquet('{lake}/students/*.parquet') s
        JOIN read_parquet('{lake}/lookup-options/*.parquet') o ON o.Id = s.Program.Id
        JOIN read_parquet('{lake}/lookups/*.parquet') l ON l.Id = o.LookupId
        WHERE s._deleted_at IS NULL
        GROUP BY ALL ORDER BY students DESC LIMIT 5
    """
    for query_text in (sql, joined):
        print("\nDuckDB:", " ".join(query_text.split()))
        relation = duckdb.sql(query_text)
        if relation is not None:
            relation.show()


def main() -> int:
    tls_dir = Path(tempfile.mkdtemp(prefix="twelvetwenty-demo-"))
    proc, info = start_simulator(tls_dir)
    try:
        print(f"simulator listening at {info['base_url']} (CA: {info['ca_file']})\n")
        env = dict(os.environ)
        env["TWELVETWENTY_API_KEY"] = info["api_key"]
        env["SSL_CERT_FILE"] = info["ca_file"]
        command = [
            sys.executable, "-m", "extractor", "extract", "--site", "demo",
            "--base-url", info["base_url"], "--out", str(LAKE), "--log-format", "text",
            "--state", str(tls_dir / "state.sqlite3"),
        ]  # fmt: skip
        print("$ TWELVETWENTY_API_KEY=... SSL_CERT_FILE=... twelvetwenty extract", *command[4:])
        status = subprocess.run(command, env=env, check=False).returncode
        if status != 0:
            print(f"demo: extract exited with status {status}", file=sys.stderr)
            return status
        query(LAKE)
        return 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tls_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
