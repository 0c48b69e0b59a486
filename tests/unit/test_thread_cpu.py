"""bench_lines's CPU split: each thread's CPU goes to its role, the sampler's to none."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from benchmarks.thread_cpu import ThreadCpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _spin(seconds: float) -> None:
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass


def test_each_threads_cpu_goes_to_its_role() -> None:
    done = threading.Event()

    def tool() -> None:
        _spin(0.6)
        done.wait(5)  # alive until the last sample

    worker = threading.Thread(target=tool, name="tool-etcher-2")
    with ThreadCpu(period_s=0.05) as cpu:
        worker.start()
        _spin(0.3)
        time.sleep(0.7)  # the worker's spin ends; the main thread idles
    done.set()
    worker.join()
    roles = cpu.by_role
    assert list(roles) == ["event loop", "tool threads", "journal sync", "other"]
    # /proc counts in clock ticks (10 ms): allow a few
    assert roles["tool threads"] == pytest.approx(0.6, abs=0.08)
    assert roles["event loop"] == pytest.approx(0.3, abs=0.08)
    assert roles["journal sync"] == 0.0
    assert cpu.total_s == pytest.approx(0.9, abs=0.1)  # the sampler's own CPU left out
