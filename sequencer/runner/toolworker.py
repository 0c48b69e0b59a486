"""Each tool's blocking driver calls on its own single worker thread.

The drivers are synchronous; the scheduler is asyncio. One thread per tool keeps
a tool's calls in order (the driver's lock would serialise them anyway) and
keeps a slow or hung tool from blocking the event loop or the other tools.
structlog's contextvars do not follow a plain thread, so every call runs in a
copy of the caller's context (``contextvars.copy_context().run``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ToolWorker:
    """Runs one tool's driver calls, one at a time, off the event loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tool-{name}")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on this tool's thread, with the caller's contextvars."""
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(
            self._pool, functools.partial(ctx.run, fn, *args, **kwargs)
        )

    def close(self) -> None:
        """Stop accepting calls; a call still running finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
