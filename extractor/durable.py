"""Wiring an extraction to its durable state: the site's database, the persisted budget,
the cross-process slots, the cached token, and a lock on the output directory.

Every command that sends requests (extract, plan) goes through :func:`durable_extraction`
so that two processes of one site (two cron jobs, say) share one ledger and one set of 3
slots, and never exceed the budget or the concurrency limit together.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from extractor.clock import Clock, SystemClock
from extractor.config import Secret, Settings
from extractor.core.budget import BudgetPolicy, WindowKind
from extractor.errors import ConfigError
from extractor.http.auth import Token
from extractor.http.client import ApiClient, CountingBudget, new_session
from extractor.http.slots import FileSlots
from extractor.progress import Progress
from extractor.run import Extraction
from extractor.state.ledger import LedgerBudget
from extractor.state.store import StateStore, default_state_path

LOCK_NAME = ".lock"


class StoredTokens:
    """The token cache of :class:`~extractor.http.auth.TokenManager`, in the state file
    (created 0600): reruns within 24 hours spend no request on a token."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def load_token(self) -> Token | None:
        row = self._store.load_token()
        return None if row is None else Token(Secret(row[0]), row[1])

    def save_token(self, token: Token) -> None:
        self._store.save_token(token.value.reveal(), token.issued_at)


def state_path(site: str, state: Path | None) -> Path:
    """The site's state database: ``--state`` or the XDG default."""
    return state or default_state_path(site)


def budget_policy(limit: int, reserve: int, window: str) -> BudgetPolicy:
    """The budget of ``--max-requests-per-day``, ``--reserve`` and ``--budget-window``."""
    try:
        return BudgetPolicy(limit=limit, reserve=reserve, window=WindowKind(window))
    except ValueError as exc:
        raise ConfigError(f"budget settings: {exc}") from None


def settings_policy(settings: Settings) -> BudgetPolicy:
    return budget_policy(settings.max_requests_per_day, settings.reserve, settings.budget_window)


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """One writer per output directory: a second process gets a clear error, not a mess."""
    runs = out_dir / "_runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        fd = os.open(runs / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot use --out {out_dir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another twelvetwenty process is writing {out_dir}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def durable_client(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[tuple[ApiClient, CountingBudget]]:
    """An API client under the site's shared budget, slots and cached token, for commands
    that send a few requests of their own (``schemas diff``)."""
    clock = clock or SystemClock()
    path = state_path(settings.site, settings.state_path)
    with StateStore.open(path, clock=clock) as store:
        policy = settings_policy(settings)
        budget = CountingBudget(LedgerBudget(store, policy, clock, wait=settings.wait))
        slots = FileSlots(Path(f"{path}.slots"), settings.concurrency)
        try:
            async with new_session(settings.base_url, settings.concurrency) as session:
                client = ApiClient.for_settings(
                    settings,
                    session,
                    limiter=slots,
                    budget=budget,
                    clock=clock,
                    token_store=StoredTokens(store),
                )
                yield client, budget
        finally:
            slots.close()


@contextlib.contextmanager
def durable_extraction(
    settings: Settings,
    *,
    progress: Progress | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Iterator[tuple[Extraction, StateStore]]:
    """An :class:`Extraction` backed by the site's state database, with the output
    directory locked for the duration."""
    clock = clock or SystemClock()
    path = state_path(settings.site, settings.state_path)
    with output_lock(settings.out_dir), StateStore.open(path, clock=clock) as store:
        policy = settings_policy(settings)
        store.prune(clock.now().timestamp(), policy)  # the ledger keeps only what can count
        slots = FileSlots(Path(f"{path}.slots"), settings.concurrency)
        try:
            extraction = Extraction(
                settings,
                clock=clock,
                rng=rng,
                progress=progress,
                limiter=slots,
                budget=LedgerBudget(store, policy, clock, wait=settings.wait),
                store=store,
                token_store=StoredTokens(store),
            )
            yield extraction, store
        finally:
            slots.close()
