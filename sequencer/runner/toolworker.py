"""Each tool's blocking driver calls on its own single worker thread.

The drivers are synchronous; the scheduler is asyncio. One thread per tool keeps
a tool's calls in order (the driver's lock would serialise them anyway) and
keeps a slow or hung tool from blocking the event loop or the other tools.
structlog's contextvars do not follow a plain thread, so every call runs in a
copy of the caller's context (``contextvars.copy_context().run``).

Why not ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` (what this
was): a call there makes a ``concurrent.futures.Future``, chains it to an asyncio
future and settles both, ~100 µs of CPU a call on top of the driver's own ~75 µs
(``SYST:STAT?`` to the simulator on this 2-core machine); a wafer makes ~75 calls.
Here the thread settles the caller's asyncio future itself, through one
``call_soon_threadsafe``. The thread is a daemon: a call hung on a dead tool does
not keep the process from exiting (the pool's thread was joined at exit).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context,
              Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the caller's loop: the call's result (or exception) unless it was cancelled."""
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class ToolWorker:
    """Runs one tool's driver calls, one at a time, off the event loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None  # started by the first call
        self._closed = False

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on this tool's thread, with the caller's contextvars."""
        if self._closed:
            raise RuntimeError(f"tool worker {self.name} is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, fut, contextvars.copy_context(), fn, args, kwargs))
        if self._thread is None:
            self._start()
        return await fut

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"tool-{self.name}",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, fut, ctx, fn, args, kwargs = item
            if fut.cancelled():  # the caller gave up before the call began
                continue
            try:
                value, ok = ctx.run(fn, *args, **kwargs), True
            except BaseException as exc:  # noqa: BLE001 - the caller's to handle
                value, ok = exc, False
            try:
                loop.call_soon_threadsafe(_settle, fut, ok, value)
            except RuntimeError:  # the caller's loop is closed: nobody waits for it
                pass

    def close(self) -> None:
        """Stop accepting calls; calls not begun are cancelled, a call still running
        finishes on its own."""
        self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                loop, fut = item[0], item[1]
                try:
                    loop.call_soon_threadsafe(fut.cancel)
                except RuntimeError:
                    pass
        self._queue.put(None)
