"""extractor/core stays pure: no network, disk, clock or randomness of its own.

Checked on the source, so a later edit that slips ``datetime.now()`` or ``import aiohttp``
into the core fails here rather than in a flaky integration test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import extractor.core

CORE = Path(extractor.core.__file__).parent
MODULES = sorted(CORE.glob("*.py"))

ALLOWED_IMPORTS = {
    "__future__",
    "bisect",
    "collections",
    "collections.abc",
    "dataclasses",
    "datetime",
    "email.utils",
    "enum",
    "math",
    "re",
    "typing",
    "extractor.errors",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "sleep"}


def imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_modules_are_all_here() -> None:
    assert {p.stem for p in MODULES} >= {"pages", "budget", "backoff", "watermark"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_core_imports_only_pure_modules(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    foreign = {
        name
        for name in imported_modules(tree)
        if name not in ALLOWED_IMPORTS and not name.startswith("extractor.core")
    }
    assert not foreign, f"{path.name} imports {sorted(foreign)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_core_never_reads_the_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & CLOCK_CALLS, f"{path.name} calls {sorted(calls & CLOCK_CALLS)}"
