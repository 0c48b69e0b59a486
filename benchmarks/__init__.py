"""Benchmarks ``make bench`` runs (``python -m benchmarks``).

Each ``benchmarks/bench_*.py`` module has a ``main() -> bool`` that measures, prints its
own table and returns True when every figure meets its target. They measure ratios
within one run (a driver against a raw socket on the same simulator), not absolute
times, so they mean the same on a laptop and on a loaded CI runner.
"""

from __future__ import annotations

import logging

import structlog


def quiet_logs() -> None:
    """Drop debug/info log lines: a benchmark measures the I/O, not the console."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
