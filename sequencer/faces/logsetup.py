"""structlog set-up for the command line: quiet by default, readable when asked.

By default only warnings reach stderr (the progress display owns stdout);
``-v`` shows debug lines: every command sent and reply received.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # resolve sys.stderr at each use, not now: a test runner (or a daemonising
        # shell) may swap and close the stream this process started with
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
