"""The engine: the line's drivers, journal, handling and ``ServingScheduler`` on a thread
with its own event loop, so that HTTP load on the daemon's loop cannot delay a poll.

Assembled as ``viaform run`` does (``sequencer.line.assemble``: drivers from tools.yaml, sim or
operator handling, the journal, the scaled clock). On start it resumes the journal's
unfinished lots (their flows are read again from the recipes folder, as ``viaform
run`` re-reads a lot file). ``call(fn, *args)`` runs a coroutine function on the
engine loop from any thread; every control request goes through it, so the scheduler
is only ever touched on its own loop. Queries read its state lock-free (see
``engine_line``). An idle poller per tool reads the tool's status every
``status_poll_wall_s`` while no step runs there: the status view stays fresh and a
lost connection is noticed (alarm, reconnect with back-off) even when idle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import structlog

from drivers.errors import ToolError
from sequencer.line.assemble import build_toolset
from sequencer.line.config import ToolsConfig
from sequencer.line.eta import LotEtas
from sequencer.line.handling import SimHandling
from sequencer.line.operator_moves import OperatorHandling
from sequencer.line.sim_control import SimControlClient
from sequencer.process.lots import parse_lot
from sequencer.process.recipes import Lot
from sequencer.runner.alarms import Event
from sequencer.runner.clock import SeqClock
from sequencer.runner.scheduler import CURRENT_TOOL, Stopping
from sequencer.runner.serving import ServingScheduler
from sequencer.runner.steps import SequencerConfig, ToolDown
from sequencer.states.job import FINAL as JOB_FINAL
from sequencer.store.journal import Journal

log = structlog.get_logger("viaform.daemon.engine")
T = TypeVar("T")


class Engine:
    """See the module docstring. ``on_event`` is called on the engine thread."""

    def __init__(self, cfg: ToolsConfig, db: Path, *, recipes_dir: Path | str | None = None,
                 overrides: dict[str, Any] | None = None, status_poll_wall_s: float = 0.5,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.cfg, self.db, self.recipes_dir = cfg, Path(db), recipes_dir
        self.overrides = overrides or {}
        self.status_poll_wall_s = status_poll_wall_s
        self.on_event = on_event
        self.clock = SeqClock(cfg.time_scale)
        self.sched: ServingScheduler | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handling: Any = None
        self.unresumable: list[str] = []  # journal lots whose flow can no longer be read
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="viaform-engine", daemon=True)
        self._submit_lock: asyncio.Lock | None = None
        self.etas = LotEtas()  # each unfinished lot's predicted end (the planner's)

    # ---- lifecycle -------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        """Start the engine thread; returns once the journal's lots are loaded (their
        reconciliation with the tools goes on in the background)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"engine did not start within {timeout_s} s")
        if self._error is not None:
            raise RuntimeError(f"engine failed to start: {self._error}") from self._error

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Graceful stop (see ``ServingScheduler.stop``); the journal is closed after."""
        if self.loop is not None and self.sched is not None and self.alive:
            fut = asyncio.run_coroutine_threadsafe(self.sched.stop(), self.loop)
            try:
                fut.result(timeout_s)
            except concurrent.futures.TimeoutError:
                log.error("engine did not stop in time")
        self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to start() or logged; never silent
            self._error = exc
            log.exception("engine stopped on an error")
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._submit_lock = asyncio.Lock()
        journal = Journal(self.db, now=self.clock.now, time_scale=self.clock.time_scale)
        try:
            self.handling = self._handling()
            lots = self._journal_lots(journal)
            if isinstance(self.handling, SimHandling):
                for lot in lots:
                    await self.handling.add_wafers([w.wafer_id for w in lot.wafers],
                                                   lot.flow.exposure.film_um)
            config = SequencerConfig.from_tools(self.cfg, **self.overrides)
            sched = ServingScheduler(lots, build_toolset(self.cfg), self.handling, journal,
                                     self.clock, config, self._emit)
            sched._load()
            self.sched = self.etas.sched = sched
            self._ready.set()
            pollers = [asyncio.create_task(self._poll(t)) for t in sched.ctx.tools]
            try:
                await sched.serve()
            finally:
                for p in pollers:
                    p.cancel()
                await asyncio.gather(*pollers, return_exceptions=True)
        finally:
            journal.close()
            if self.handling is not None:
                self.handling.close()
            log.info("engine stopped; journal closed")

    def _handling(self) -> Any:
        if self.cfg.handling == "operator":
            return OperatorHandling(self.db, timeout_s=self.cfg.handling_timeout_s)
        return SimHandling(SimControlClient.from_config(self.cfg))

    def _journal_lots(self, journal: Journal) -> list[Lot]:
        """The journal's unfinished lots, with their flows read from the recipes folder."""
        rows = journal.db.execute("SELECT lot_id, flow, job_state FROM lots ORDER BY created, "
                                  "lot_id").fetchall()
        lots: list[Lot] = []
        for lot_id, flow, state in rows:
            if state in JOB_FINAL:
                continue
            wafers = [{"slot": s, "id": w} for w, s, _, _ in journal.wafer_rows(lot_id)]
            lot, problems = parse_lot({"lot_id": lot_id, "flow": flow, "wafers": wafers},
                                      None, self.recipes_dir)
            if lot is None:
                why = "; ".join(f"{p.place}: {p.message}" for p in problems)
                log.error("journal lot cannot be resumed", lot_id=lot_id, why=why)
                self.unresumable.append(f"{lot_id}: {why}")
                continue
            lots.append(lot)
        return lots

    def _emit(self, event: Event) -> None:
        self.etas.request()
        if self.on_event is not None:
            self.on_event(event)

    async def _poll(self, tool: str) -> None:
        """Read the tool's status while no step (or manual command) runs there."""
        CURRENT_TOOL.set(tool)
        assert self.sched is not None
        sched, h = self.sched, self.sched.ctx.tools[tool]
        while not sched.stopping:
            if tool not in sched.busy and not sched.manual[tool] and h.comms != "UNKNOWN":
                try:
                    await h.q(h.driver.status)
                except Stopping:
                    return
                except (ToolDown, ToolError) as exc:
                    log.info("status poll failed", tool=tool, error=str(exc))
                except Exception:
                    log.exception("status poll failed", tool=tool)
            await asyncio.sleep(self.status_poll_wall_s)

    # ---- calls from other threads --------------------------------------------------------
    def submit(self, fn: Callable[..., Coroutine[Any, Any, T]],
               *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` on the engine loop; a concurrent future of its result."""
        if self.loop is None or self.sched is None or not self.alive:
            raise RuntimeError("the engine is not running")
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From another event loop: run ``fn(*args)`` (plain or async) on the engine loop."""
        async def run() -> Any:
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result
        return await asyncio.wrap_future(self.submit(run))

    async def submit_lot(self, lot: Lot) -> None:
        """On the engine loop: the simulated world learns the wafers, then the scheduler
        takes the lot (the scheduler's checks first, so a refused lot adds nothing)."""
        assert self.sched is not None and self._submit_lock is not None
        async with self._submit_lock:
            self.sched.check_submit(lot)
            if isinstance(self.handling, SimHandling):
                await self.handling.add_wafers([w.wafer_id for w in lot.wafers],
                                               lot.flow.exposure.film_um)
            self.sched.submit(lot)
