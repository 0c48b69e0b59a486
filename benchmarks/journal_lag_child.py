"""The child process of ``bench_journal_lag``: one lot through the simulators, loop lag measured.

Started as ``python -m benchmarks.journal_lag_child OUT.json SCALE WAFERS TAG`` with the
``slow_fsync`` shim in ``LD_PRELOAD`` (its delay in ``VIAFORM_FSYNC_DELAY_MS``; 0 for the
normal disk, so both runs count their fsyncs the same way). The shim is taken out of
the environment before the simulators' own process is spawned: only this process, the
sequencer, has the slow disk.

Two probes are patched in here, none in the product:

- a task that sleeps 1 ms in a loop and records how late it wakes (the event loop's lag);
- ``SeqClock.sleep``, through which every wait between two polls of a tool's state goes
  (``ToolHandle.wait``, the cure watch, make-safe): how late each such sleep wakes
  past its deadline, i.e. how late the next poll is sent;
- ``ToolWorker.call``, through which every driver call goes: how long each reply, back
  from the tool's worker thread, waited for the loop to pick it up.

The JSON written: the lag samples, the poll sleeps' lateness, the shim's fsync counts
(all threads, and those on the event-loop thread) and the run's outcome.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

RECIPES = Path(__file__).resolve().parent.parent / "configs" / "recipes"
PROBE_S = 0.001


def _shim(path: str) -> ctypes.CDLL | None:
    """The preloaded shim (the same handle ``LD_PRELOAD`` loaded), or None."""
    if "slow_fsync" not in path:
        return None
    lib = ctypes.CDLL(path)
    for name in ("slow_fsync_calls", "slow_fsync_loop_calls", "slow_fsync_slept_ns"):
        getattr(lib, name).restype = ctypes.c_long
    lib.slow_fsync_mark_loop_thread.restype = None
    return lib


async def _probe(lags: list[float], stop: asyncio.Event) -> None:
    """Sleep 1 ms, again and again; record how late each wake-up is (s)."""
    perf = time.perf_counter
    while not stop.is_set():
        t0 = perf()
        await asyncio.sleep(PROBE_S)
        lags.append(max(0.0, perf() - t0 - PROBE_S))


def _patch_poll_sleeps(late: list[float]) -> None:
    """Record, for every ``SeqClock.sleep``, how far past its deadline it resumed (s)."""
    from sequencer.runner.clock import SeqClock

    original = SeqClock.sleep

    async def sleep(self: SeqClock, sim_s: float) -> None:
        t0 = time.perf_counter()
        await original(self, sim_s)
        late.append(max(0.0, time.perf_counter() - t0 - self.to_wall(sim_s)))

    SeqClock.sleep = sleep  # type: ignore[method-assign]


def _patch_tool_replies(late: list[float]) -> None:
    """Record, for every tool call, how long its reply waited for the loop (s): from the
    driver call's end on the tool's worker thread to the awaiting coroutine resuming."""
    from sequencer.runner.toolworker import ToolWorker

    original = ToolWorker.call

    async def call(self: ToolWorker, fn: Any, *args: Any, **kwargs: Any) -> Any:
        ended: list[float] = []

        def timed(*a: Any, **k: Any) -> Any:
            try:
                return fn(*a, **k)
            finally:
                ended.append(time.perf_counter())

        try:
            return await original(self, timed, *args, **kwargs)
        finally:
            if ended:
                late.append(max(0.0, time.perf_counter() - ended[0]))

    ToolWorker.call = call  # type: ignore[method-assign]


def _lot_file(folder: Path, tag: str, wafers: int) -> Path:
    rows = [{"slot": i, "id": f"{tag}W{i:02d}"} for i in range(1, wafers + 1)]
    path = folder / f"{tag}.yaml"
    path.write_text(yaml.safe_dump({"lot": {"lot_id": f"LAG-{tag}", "flow": "FLOW-A",
                                            "wafers": rows}}))
    return path


def run(out: Path, scale: float, wafers: int, tag: str) -> None:
    preload = os.environ.pop("LD_PRELOAD", "")  # the simulators' process: a normal disk
    import benchmarks
    from benchmarks.bench_schedule import SimProcess
    from sequencer.line.assemble import run_lot_objects
    from sequencer.line.simhost import tools_config_for
    from sequencer.process.lots import load_lot

    benchmarks.quiet_logs()
    lib = _shim(preload)
    lags: list[float] = []
    late: list[float] = []
    replies: list[float] = []
    _patch_poll_sleeps(late)
    _patch_tool_replies(replies)
    with tempfile.TemporaryDirectory(prefix="viaform-lag-") as tmp, \
            SimProcess(scale) as endpoints:
        lot = load_lot(_lot_file(Path(tmp), tag, wafers), RECIPES)
        db = Path(tmp) / "lag.db"
        cfg = tools_config_for(endpoints, scale, journal=str(db))

        async def main() -> Any:
            if lib is not None:
                lib.slow_fsync_mark_loop_thread()
            stop = asyncio.Event()
            probe = asyncio.create_task(_probe(lags, stop))
            try:
                return await run_lot_objects([lot], cfg, db)
            finally:
                stop.set()
                await probe

        calls0 = lib.slow_fsync_calls() if lib else 0
        wall0 = time.perf_counter()
        report = asyncio.run(main())
        wall = time.perf_counter() - wall0
    result = {
        "tag": tag, "scale": scale, "wafers": wafers, "wall_s": wall,
        "processed": sum(r.state == "PROCESSED" for r in report.rows),
        "states": sorted({r.state for r in report.rows}),
        "lags": lags, "poll_late": late, "reply_late": replies,
        "poll_periods_wall_s": {t: float(e["poll_s"]) / scale for t, e in cfg.entries.items()},
        "fsyncs": (lib.slow_fsync_calls() - calls0) if lib else None,
        "loop_fsyncs": lib.slow_fsync_loop_calls() if lib else None,
        "slept_s": lib.slow_fsync_slept_ns() / 1e9 if lib else None,
        "threads": threading.active_count(),
    }
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    run(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
