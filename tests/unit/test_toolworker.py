"""ToolWorker: one tool's driver calls in order on one thread of its own, off the loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from sequencer.runner.toolworker import ToolWorker

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_calls_run_in_order_on_one_thread_of_their_own_with_the_callers_context() -> None:
    seen: list[tuple[int, str, int]] = []

    def call(i: int) -> int:
        time.sleep(0.002 * (5 - i))  # a later call is quicker: order must still hold
        seen.append((i, WHO.get(), threading.get_ident()))
        return i * 10

    async def main() -> list[int]:
        w = ToolWorker("t")
        WHO.set("pytest")
        try:
            return list(await asyncio.gather(*(w.call(call, i) for i in range(5))))
        finally:
            w.close()

    loop_thread = threading.get_ident()
    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert [i for i, _, _ in seen] == [0, 1, 2, 3, 4]
    assert {who for _, who, _ in seen} == {"pytest"}
    threads = {t for _, _, t in seen}
    assert len(threads) == 1 and loop_thread not in threads


def test_an_error_reaches_the_caller_and_the_worker_carries_on() -> None:
    def boom() -> None:
        raise ValueError("no reply")

    async def main() -> str:
        w = ToolWorker("t")
        with pytest.raises(ValueError, match="no reply"):
            await w.call(boom)
        try:
            return await w.call(str.upper, "still here")
        finally:
            w.close()

    assert asyncio.run(main()) == "STILL HERE"


def test_a_hung_tool_blocks_neither_the_loop_nor_another_tool() -> None:
    release = threading.Event()

    async def main() -> tuple[str, bool]:
        hung, other = ToolWorker("hung"), ToolWorker("other")
        stuck = asyncio.ensure_future(hung.call(release.wait, 5.0))
        await asyncio.sleep(0.01)
        answer = await asyncio.wait_for(other.call(str, "answered"), 1.0)
        waiting = not stuck.done()
        release.set()
        await stuck
        hung.close(), other.close()
        return answer, waiting

    assert asyncio.run(main()) == ("answered", True)


def test_close_cancels_the_calls_not_begun_and_refuses_new_ones() -> None:
    ran: list[int] = []
    gate = threading.Event()

    async def main() -> None:
        w = ToolWorker("t")
        first = asyncio.ensure_future(w.call(gate.wait, 5.0))
        await asyncio.sleep(0.01)  # the first call is running
        queued = asyncio.ensure_future(w.call(ran.append, 2))
        await asyncio.sleep(0.01)
        w.close()
        gate.set()
        assert await first is True  # a running call finishes on its own
        with pytest.raises(asyncio.CancelledError):
            await queued
        with pytest.raises(RuntimeError, match="closed"):
            await w.call(ran.append, 3)

    asyncio.run(main())
    time.sleep(0.02)
    assert ran == []
