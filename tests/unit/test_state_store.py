"""extractor.state.store: the per-site SQLite state.

Round trips of everything it keeps; the file is private (0600) from its first byte; WAL;
a file that is not ours is a ConfigError; migrations are idempotent; and the ledger never
grants past capacity in any rolling 24 hours or UTC day, whatever the clock does, with
the exact same answers as the pure core.budget model (multi-process: tests/integration).
"""

from __future__ import annotations

import bisect
import os
import re
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.clock import ManualClock
from extractor.core.budget import DAY, Budget, BudgetPolicy, WindowKind
from extractor.core.pages import PageWalk
from extractor.core.watermark import Window
from extractor.errors import ConfigError
from extractor.state import db as statedb
from extractor.state.store import StateStore, default_state_path

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "site.sqlite3", clock=ManualClock(START)) as s:
        yield s


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- where and how the file is made ----------------------------------------------------


def test_default_path_follows_xdg_state_home() -> None:
    env = {"XDG_STATE_HOME": "/var/state", "HOME": "/home/u"}
    assert default_state_path("acme", env) == Path("/var/state/twelvetwenty/acme.sqlite3")
    assert default_state_path("acme", {"HOME": "/home/u"}) == Path(
        "/home/u/.local/state/twelvetwenty/acme.sqlite3"
    )
    # The XDG spec: a relative path is invalid and ignored.
    relative = {"XDG_STATE_HOME": "state", "HOME": "/home/u"}
    assert default_state_path("acme", relative).parent == Path("/home/u/.local/state/twelvetwenty")


@pytest.mark.parametrize("site", ["", "../x", "a/b", ".hidden"])
def test_a_site_that_cannot_be_a_file_name_is_a_config_error(site: str) -> None:
    with pytest.raises(ConfigError):
        default_state_path(site, {"HOME": "/home/u"})


def test_new_file_and_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "twelvetwenty" / "acme.sqlite3"
    with StateStore.open(path) as s:
        s.save_token("tok", START)
        assert mode(path) == 0o600
        assert mode(path.parent) == 0o700
        assert mode(path.with_name(path.name + "-wal")) == 0o600


def test_a_readable_existing_file_is_tightened_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "acme.sqlite3"
    with StateStore.open(path) as s:
        s.save_token("tok", START)
    path.chmod(0o644)
    wal = path.with_name(path.name + "-wal")
    wal.touch()
    wal.chmod(0o644)  # left behind by an old crash, say
    with StateStore.open(path) as s:
        assert s.load_token() == ("tok", START)
        assert mode(path) == 0o600
        assert mode(wal) == 0o600


def test_an_empty_world_readable_file_is_tightened_before_sqlite_writes(tmp_path: Path) -> None:
    path = tmp_path / "acme.sqlite3"
    path.touch(0o666)
    path.chmod(0o666)
    StateStore.open(path).close()
    assert mode(path) == 0o600


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "acme.sqlite3"
    StateStore.open(path).close()
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(path, "PRAGMA application_id") == [(statedb.APPLICATION_ID,)]
    versions = raw(path, "SELECT version FROM schema_version")
    assert versions == [(v,) for v in range(1, statedb.SCHEMA_VERSION + 1)]


def test_reopening_migrates_nothing_twice_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "acme.sqlite3"
    for _ in range(3):
        with StateStore.open(path) as s:
            s.set_watermark("out", "students", START)
    assert len(raw(path, "SELECT * FROM schema_version")) == statedb.SCHEMA_VERSION
    with StateStore.open(path) as s:
        assert s.get_watermark("out", "students") == START


def test_a_file_that_is_not_sqlite_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "acme.sqlite3"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 50)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        StateStore.open(path)


def test_someone_elses_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="something else"):
        StateStore.open(path)
    assert raw(path, "SELECT name FROM sqlite_master") == [("invoices",)]  # untouched


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acme.sqlite3"
    StateStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (statedb.SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="newer"):
        StateStore.open(path)


def test_a_corrupt_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "acme.sqlite3"
    with StateStore.open(path) as s:
        for i in range(50):
            s.save_checkpoint("out", f"entity-{i}", {"blob": "x" * 2000})
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with path.open("r+b") as f:  # scribble over every page but the first (the header)
        page = 4096
        size = path.stat().st_size
        for offset in range(page, size, page):
            f.seek(offset)
            f.write(b"\xa5" * 64)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        StateStore.open(path)


def test_a_directory_in_the_way_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "acme.sqlite3").mkdir()
    with pytest.raises(ConfigError):
        StateStore.open(tmp_path / "acme.sqlite3")


# -- round trips -----------------------------------------------------------------------


def test_token_round_trip_and_clear(store: StateStore) -> None:
    assert store.load_token() is None
    store.save_token("first", START)
    store.save_token("second", START + timedelta(hours=1))
    assert store.load_token() == ("second", START + timedelta(hours=1))
    store.clear_token()
    assert store.load_token() is None


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.save_token("t", datetime(2026, 1, 5, 12))
    with pytest.raises(ValueError, match="naive"):
        store.set_watermark("out", "students", datetime(2026, 1, 5, 12))


def test_checkpoint_round_trip_of_a_page_walk(store: StateStore) -> None:
    walk = PageWalk(500)
    data = walk.to_dict()
    scope = "/lake/acme"
    entity = f"students@{Window(None, START).key()}"
    assert store.load_checkpoint(scope, entity) is None
    store.save_checkpoint(scope, entity, data)
    loaded = store.load_checkpoint(scope, entity)
    assert loaded == data
    assert PageWalk.from_dict(loaded).to_dict() == data
    store.save_checkpoint(scope, entity, {**data, "total_changes": 2})  # upsert
    rows = store.list_checkpoints()
    assert [(r.scope, r.entity, r.updated_at) for r in rows] == [(scope, entity, START)]
    assert rows[0].data["total_changes"] == 2
    store.save_checkpoint("/lake/other", "notes", {"format": 1})
    assert [r.scope for r in store.list_checkpoints()] == ["/lake/acme", "/lake/other"]
    store.delete_checkpoint(scope, entity)
    assert store.load_checkpoint(scope, entity) is None
    assert len(store.list_checkpoints()) == 1


def test_a_checkpoint_that_is_not_json_is_refused_before_it_is_stored(store: StateStore) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        store.save_checkpoint("out", "students", {"x": float("nan")})
    with pytest.raises(TypeError):
        store.save_checkpoint("out", "students", {"x": object()})
    assert store.list_checkpoints() == []


def test_watermarks_are_exact_and_utc(store: StateStore) -> None:
    assert store.get_watermark("out", "students") is None
    plus2 = timezone(timedelta(hours=2))
    value = datetime(2026, 1, 5, 14, 0, 0, 123456, tzinfo=plus2)
    store.set_watermark("out", "students", value)
    got = store.get_watermark("out", "students")
    assert got == value and got is not None and got.utcoffset() == timedelta(0)
    store.set_watermark("out", "students", datetime(1, 1, 1, tzinfo=UTC))
    assert store.get_watermark("out", "students") == datetime(1, 1, 1, tzinfo=UTC)
    assert [(w.entity, w.updated_at) for w in store.list_watermarks()] == [("students", START)]


def test_runs_history_newest_first(store: StateStore) -> None:
    for i in range(3):
        store.start_run(f"r{i}", START + timedelta(hours=i), "extract --site acme", "/lake")
    store.finish_run("r0", START + timedelta(minutes=5), "ok", {"requests": 12, "at": START})
    runs = store.recent_runs()
    assert [r.run_id for r in runs] == ["r2", "r1", "r0"]
    assert [r.status for r in runs] == ["running", "running", "ok"]
    assert runs[2].summary == {"requests": 12, "at": str(START)}
    assert runs[2].finished_at == START + timedelta(minutes=5)
    assert runs[0].pid == os.getpid()
    assert [r.run_id for r in store.recent_runs(limit=1)] == ["r2"]


def test_run_ids_are_unique_and_must_exist(store: StateStore) -> None:
    store.start_run("r", START, "extract", "/lake")
    with pytest.raises(ValueError, match="already"):
        store.start_run("r", START, "extract", "/lake")
    with pytest.raises(ValueError, match="never started"):
        store.finish_run("nope", START, "ok", {})


def test_a_run_whose_process_died_reads_as_abandoned(tmp_path: Path) -> None:
    """The run is recorded by another process that then exits without finishing it."""
    path = tmp_path / "acme.sqlite3"
    code = (
        "import sys; from datetime import datetime, UTC; from pathlib import Path;"
        "from extractor.state.store import StateStore;"
        "s = StateStore.open(Path(sys.argv[1]));"
        "s.start_run('dead', datetime.now(UTC), 'extract', '/lake'); s.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    with StateStore.open(path) as s:
        s.start_run("alive", START, "extract", "/lake")
        status = {r.run_id: r.status for r in s.recent_runs()}
    assert status == {"dead": "abandoned", "alive": "running"}


def test_the_command_of_a_run_is_redacted(store: StateStore) -> None:
    store.start_run("r", START, "extract https://x/api?key=SECRET", "/lake")
    assert "SECRET" not in store.recent_runs()[0].command


# -- the ledger ------------------------------------------------------------------------


def test_charge_until_refused_then_wait_until_the_first_frees(store: StateStore) -> None:
    policy = BudgetPolicy(limit=5, reserve=2)
    assert [store.charge(T0 + i, policy, "GET /x").granted for i in range(4)] == [
        True, True, True, False,
    ]  # fmt: skip
    refused = store.charge(T0 + 10, policy, "GET /x")
    assert (refused.at, refused.wait) == (T0 + DAY, DAY - 10)
    assert store.ledger_times(T0 + 10, policy) == [T0, T0 + 1, T0 + 2]
    assert store.charge(T0 + DAY, policy, "GET /x").granted


def test_charging_n_units_is_all_or_nothing(store: StateStore) -> None:
    policy = BudgetPolicy(limit=5)
    assert store.charge(T0, policy, "batch", n=3).granted
    assert not store.charge(T0, policy, "batch", n=3).granted
    assert len(store.ledger_times(T0, policy)) == 3
    with pytest.raises(ValueError, match="n must be"):
        store.charge(T0, policy, "too many", n=6)
    assert len(store.ledger_times(T0, policy)) == 3


def test_no_key_is_ever_stored_in_the_ledger(store: StateStore) -> None:
    policy = BudgetPolicy(limit=10)
    store.charge(T0, policy, "GET /api/client/generateAuthenticationToken?key=SECRET1")
    store.charge(T0, policy, "token key=SECRET2 api_key=SECRET3")
    store.charge(T0, policy, "GET /x&token=SECRET4 Bearer SECRET5")
    text = " ".join(what for _, what in store.ledger_entries(0.0))
    assert "SECRET" not in text
    assert "generateAuthenticationToken" in text


def test_prune_keeps_48_hours_and_everything_that_counts(store: StateStore) -> None:
    charged = [T0 + hours * 3600 for hours in range(0, 96, 6)]
    now = T0 + 96 * 3600 + 1800  # 00:30 UTC: utc-day alone would keep only 24.5 h
    for window in WindowKind:
        policy = BudgetPolicy(limit=100, window=window)
        for at in charged:
            store.charge(at, policy, "GET /x")
        assert store.prune(now, policy) == sum(1 for at in charged if at < now - 2 * DAY)
        kept = [at for at, _ in store.ledger_entries(0.0)]
        assert kept == [at for at in charged if at >= now - 2 * DAY]
        assert set(store.ledger_times(now, policy)) <= set(kept)
        store.prune(T0 + 1000 * DAY, policy)
        assert store.ledger_entries(0.0) == []


def _worst_rolling(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + DAY) - i for i, t in enumerate(times)), default=0)


def _worst_day(times: list[float]) -> int:
    return max(Counter(t // DAY for t in times).values(), default=0)


steps = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from([0.0, 1.0, -1.0, DAY, -DAY, DAY - 1, 3600.0, -3600.0, 1e-3]),
            st.floats(-2 * DAY, 2 * DAY, allow_nan=False),
        ),
        st.integers(1, 3),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    steps=steps,
    limit=st.integers(1, 6),
    reserve=st.integers(0, 3),
    window=st.sampled_from(list(WindowKind)),
    prune=st.booleans(),
)
def test_the_ledger_never_grants_past_capacity(
    steps: list[tuple[float, int]], limit: int, reserve: int, window: WindowKind, prune: bool
) -> None:
    """Random charges at a clock that jumps both ways: the store answers exactly as the pure
    model, and no rolling 24 h (or UTC day) ever holds more than the capacity. With pruning
    on, the clock goes back at most one day behind the latest time seen (the margin
    prune_before keeps); without, anywhere."""
    policy = BudgetPolicy(limit=limit + reserve, reserve=reserve, window=window)
    model = Budget(policy)
    granted: list[float] = []
    now = latest = T0 + 3600 * 7.5
    with tempfile.TemporaryDirectory() as tmp, StateStore.open(Path(tmp) / "s.sqlite3") as s:
        for jump, n in steps:
            now += jump
            if prune:
                now = max(now, latest - DAY)
                latest = max(latest, now)
                s.prune(now, policy)
                model.prune(now)
            if n > policy.capacity:
                continue
            grant = s.charge(now, policy, "GET /x", n)
            assert grant == model.try_take(now, n)
            if grant.granted:
                granted += [now] * n
        assert len(s.ledger_entries(-1e18)) <= len(granted)
    worst = _worst_rolling(granted) if window is WindowKind.ROLLING else _worst_day(granted)
    assert worst <= policy.capacity
