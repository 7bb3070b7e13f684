"""Run every ``benchmarks/bench_*.py`` module's ``main()`` in turn (``make bench``).

``python -m benchmarks [NAME ...]`` runs only the modules whose name contains a NAME.
The exit status is non-zero if any benchmark crashed or returned non-zero; a missed target
ratio is printed (MISS), not an error.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_") and (not argv or any(a in m.name for a in argv))
    )
    status = 0
    for name in names:
        print(f"=== {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            rc = int(module.main())
        except Exception:
            traceback.print_exc()
            rc = 1
        if rc:
            print(f"=== {name}: exit status {rc}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
