"""Benchmarks: each ``bench_*.py`` module has a ``main() -> int``; ``python -m benchmarks``
runs them all."""
