"""Opening the state database: a private file, WAL, and a schema migrated by number.

Why each choice:

- The file holds a bearer token, so it is created 0600 with ``os.open`` *before* SQLite
  touches it (SQLite would create it with the umask's mode), and a file someone left
  group- or world-readable is tightened rather than refused: refusing would only make the
  user run ``chmod`` by hand. SQLite creates its ``-wal`` and ``-shm`` files with the main
  file's mode; existing ones are tightened too.
- WAL with ``synchronous=NORMAL``: readers (``status``) never block the writer, and a
  committed transaction survives the process being killed at any instant (SIGKILL, OOM).
  What the last commits before a *power loss* or kernel crash may lose is out of scope: the
  ledger errs on that side only by under-counting a handful of requests once in a
  machine's lifetime, and checkpoints lose pages that are simply fetched again.
- ``busy_timeout`` is generous (30 s): every write transaction is a few statements long,
  so a waiter only ever waits for another process's short commit.
- ``PRAGMA application_id`` marks the file as ours, so a path that points at some other
  SQLite database is refused instead of being "migrated" into it.
- Migrations are numbered statements applied in one ``BEGIN IMMEDIATE`` transaction that
  re-reads the version inside it, so processes opening a new file together migrate it once.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from extractor.errors import ConfigError

APPLICATION_ID = 0x31323230  # b"1220"
BUSY_TIMEOUT_S = 30.0
SIDE_FILES = ("-wal", "-shm", "-journal")

# Migration i + 1 is MIGRATIONS[i]: never edit one that shipped, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # One row per request charged (POSIX seconds), before it was sent.
        "CREATE TABLE ledger (id INTEGER PRIMARY KEY, at REAL NOT NULL, what TEXT NOT NULL)",
        "CREATE INDEX ledger_at ON ledger (at)",
        "CREATE TABLE token (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " value TEXT NOT NULL, issued_at TEXT NOT NULL)",
        "CREATE TABLE checkpoints (scope TEXT NOT NULL, entity TEXT NOT NULL,"
        " data TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (scope, entity))",
        "CREATE TABLE watermarks (scope TEXT NOT NULL, entity TEXT NOT NULL,"
        " value TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (scope, entity))",
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL,"
        " command TEXT NOT NULL, scope TEXT NOT NULL, pid INTEGER NOT NULL,"
        " host TEXT NOT NULL, status TEXT NOT NULL, finished_at TEXT, summary TEXT)",
        "CREATE INDEX runs_started ON runs (started_at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def secure_file(path: Path) -> None:
    """Create ``path`` (and missing parents, 0700) as a private file, or make it private."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"state database {path} is not a regular file")
            if info.st_mode & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        for suffix in SIDE_FILES:
            side = path.with_name(path.name + suffix)
            if side.exists() and side.stat().st_mode & 0o077:
                side.chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create the state database {path}: {exc.strerror}") from exc


def connect(path: Path) -> sqlite3.Connection:
    """A connection to our (migrated) database at ``path``; ``ConfigError`` when the file
    is not a SQLite database, is corrupt, belongs to something else, or is newer than us.

    Two processes opening a new database together can see "database is locked" from the
    switch to WAL, which SQLite answers at once rather than through the busy handler:
    such an open is tried again, for up to the busy timeout.
    """
    secure_file(path)
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            return _connect_once(path)
        except _Locked:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"state database {path} is not usable: database is locked"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class _Locked(Exception):
    """The database was locked while being set up: try again."""


def _connect_once(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _check_identity(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"state database {path} cannot use WAL (journal mode {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if check != "ok":
            raise ConfigError(f"state database {path} is corrupt: {check}")
        _migrate(conn, path)
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise _Locked from exc
        raise ConfigError(f"state database {path} is not usable: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"state database {path} is not usable: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name) for (name,) in rows}


def _check_identity(conn: sqlite3.Connection, path: Path) -> None:
    # Both reads in one transaction: another process may be creating the database, and
    # its id and its tables must be seen together (both, or neither).
    nested = conn.in_transaction
    if not nested:
        conn.execute("BEGIN")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = _tables(conn)
    finally:
        if not nested:
            conn.execute("COMMIT")
    if app_id != APPLICATION_ID and (app_id != 0 or tables):
        raise ConfigError(
            f"{path} is an SQLite database of something else, not twelvetwenty state: "
            "pass another --state path"
        )


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied (0 for a new file)."""
    if "schema_version" not in _tables(conn):
        return 0
    (version,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(version)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_identity(conn, path)  # another process may have written it meanwhile
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"state database {path} has schema version {current}, newer than this "
                f"extractor's {SCHEMA_VERSION}: upgrade the extractor"
            )
        if current == 0:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (version,),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
