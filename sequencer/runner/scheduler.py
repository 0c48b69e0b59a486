"""The HOW: one worker per tool (``sequencer.runner.workers``), all concurrent, keeping
the batch ovens full. A line may have several tools of a kind (``ToolSet.kinds``).

- Exposure: wafers in lot order, one after another, lot after lot.
- Oven: a batch starts when ``batch_size`` developed wafers of one cure recipe wait,
  or when waiting for more would break the oldest one's develop→cure queue time
  (missing wafers × the exposure cycle, measured), or when no more can arrive.
- Etcher: wafers as they come out of the oven (cure→etch queue time checked).
So lots overlap: the next lot exposes while the last cures, its etch runs while
the next cures; the makespan tends to first exposure + n × cure + last etch.

``run()`` (``viaform run``/``demo``) runs the given lots until done; a tool that
stays down (ToolDown) leaves its kind's work to the others of its kind (the last one of
a kind down: that work is held with the reason) while the other workers carry on.
The workers pick their next work from the wafers' states, so a subclass may add
lots while they run: ``sequencer.runner.serving.ServingScheduler`` (the daemon)
overrides the hooks marked "serve mode" (``_may_run``, ``_may_start``,
``_after_step``, ``_on_tool_down`` …) for lots submitted while serving, pause/resume/
abort, take/give and a graceful stop (``Stopping``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import structlog

from sequencer.runner.alarms import Alarms, Event, EventSink
from sequencer.runner.batching import BatchPolicy
from sequencer.runner.clock import SeqClock
from sequencer.runner.guarding import StepGuard, Stopping
from sequencer.runner.policy import Decision
from sequencer.runner.protocols import MaterialHandling, ToolSet
from sequencer.runner.recovery import reconcile_at_start
from sequencer.runner.run_report import RunReport, build_report
from sequencer.runner.steps import (
    SequencerConfig,
    StepContext,
    ToolDown,
    ToolHandle,
    apply_fate,
)
from sequencer.runner.tool_holds import ToolHolds
from sequencer.runner.workers import CURRENT_TOOL, IDLE_WALL_S, Busy, KindWorkers
from sequencer.states.job import ProcessJob
from sequencer.states.substrate import Substrate
from sequencer.store.journal import Journal

log = structlog.get_logger("viaform.scheduler")

NOT_STARTED = ("QUEUED", "SETTING_UP", "WAITING_FOR_START")
STEP_KIND = {"expose": "exposure", "cure": "oven", "etch": "etcher"}  # step → its tools' kind
__all__ = ["CURRENT_TOOL", "IDLE_WALL_S", "NOT_STARTED", "Busy", "Scheduler", "Stopping",
           "run_lots"]


class Scheduler(StepGuard, BatchPolicy, KindWorkers):
    """Runs lots through expose → cure → etch; see the module docstring."""

    serve_mode = False  # True: lots may come while running; never ends by itself

    def __init__(self, lots: Iterable[Any], tools: ToolSet, handling: MaterialHandling,
                 journal: Journal, clock: SeqClock, config: SequencerConfig,
                 on_event: EventSink | None = None) -> None:
        self.lots = list(lots)
        self.on_event = on_event
        self.clock = clock
        alarms = Alarms(journal, self._emit)
        self.ctx = StepContext(journal=journal, alarms=alarms, clock=self._step_clock(clock),
                               config=config, handling=handling, emit=self._emit,
                               make_program=tools.make_program)
        for name, driver in tools.drivers.items():
            h = self._handle(name, driver, tools.kinds[name])
            h.on_comms.append(self._comms_changed)
            self.ctx.tools[name] = h
        self.flows: dict[str, Any] = {lot.lot_id: lot.flow for lot in self.lots}
        self.jobs: dict[str, ProcessJob] = {}
        self.wafers: list[Substrate] = []
        self.changed = asyncio.Event()
        self.ended: set[str] = set()  # tools whose worker has ended
        self.down: dict[str, str] = {}  # tool → why it is down
        self.cycle: list[float] = []  # measured exposure step durations
        self.batches: list[tuple[int | None, list[str]]] = []
        self.expose_t0: dict[str, float] = {}  # exposure cell → when its exposure began
        self.oven_busy: dict[str, tuple[float, float]] = {}  # oven → (since, expected s)
        self.recovery: list[str] = []
        self.busy: dict[str, Busy] = {}  # tool → the job step running on it
        self.decisions: list[Decision] = []  # every step claimed, in order (the planner's too)
        self.paused: set[str] = set()  # lots paused by request (not by a comms loss)
        self.stopping = False
        self.holds = ToolHolds(self.ctx)
        self._loaded = False

    # ---- the line's tools by kind ---------------------------------------------------
    def _all_ended(self, kind: str) -> bool:
        return all(t in self.ended for t in self.ctx.of_kind(kind))

    @property
    def exposure_done(self) -> bool:
        """Every exposure cell's worker has ended: no more wafers will be developed."""
        return self._all_ended("exposure")

    @property
    def oven_done(self) -> bool:
        return self._all_ended("oven")

    def _kind_down(self, kind: str) -> str | None:
        """Why every tool of ``kind`` is down (their reasons, joined), or None if one is up."""
        names = self.ctx.of_kind(kind)
        if not names or any(t not in self.down for t in names):
            return None
        return "; ".join(self.down[t] for t in names)

    def _tool_of(self, w: Substrate) -> str:
        """The tool ``w``'s step in progress is on. (A journal from before tools of a kind
        could be several names no tool: its step resumes on the first tool of the kind.)"""
        if w.data.tool or not w.data.step:
            return w.data.tool
        return (self.ctx.of_kind(STEP_KIND.get(w.data.step, "")) or [""])[0]

    def _on(self, w: Substrate, tool: str) -> bool:
        """Is ``w``'s step in progress on ``tool``?"""
        return bool(w.data.step) and self._tool_of(w) == tool

    def _exposure_open(self) -> bool:
        """May more wafers still be developed? (Serve mode: not while every cell is taken.)"""
        return not self.exposure_done

    def _taken(self, w: Substrate) -> bool:
        """A step of ``w`` is running, or claimed, on some tool."""
        return any(w is x for b in self.busy.values() for x in b.wafers)

    # ---- hooks (serve mode overrides them) ------------------------------------------
    def _step_clock(self, clock: SeqClock) -> Any:
        return clock

    def _handle(self, name: str, driver: Any, kind: str) -> ToolHandle[Any]:
        return ToolHandle(name, driver, self.ctx, kind)

    def _may_run(self, w: Substrate) -> bool:
        """May a step of ``w`` start (or resume)?"""
        return not w.final

    async def _may_start(self, tool: str, wafers: tuple[Substrate, ...]) -> bool:
        """May ``tool`` start a step of ``wafers`` now? False: pick again."""
        return True

    def _after_step(self, tool: str, step: Busy) -> None:
        """A job step on ``tool`` has ended (whatever its outcome)."""

    def _on_tool_down(self, tool: str, exc: ToolDown, wafers: Iterable[Substrate]) -> bool:
        """True if handled (the worker carries on); False: the tool's remaining work is held."""
        return False

    # ---- events and listeners ------------------------------------------------
    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a display must never stop the line
                log.exception("event callback failed")

    def _wafer_changed(self, w: Substrate, src: str, dst: str, reason: str) -> None:
        self.ctx.journal.wafer_transition(w.wafer_id, src, dst, reason, w.data_dict())
        log.info("wafer state", lot_id=w.lot_id, wafer_id=w.wafer_id, src=src, dst=dst,
                 reason=reason)
        self._emit(Event("wafer", self.clock.now(), lot_id=w.lot_id, wafer_id=w.wafer_id,
                         data={"src": src, "dst": dst, "reason": reason}))
        self.changed.set()
        job = self.jobs.get(w.lot_id)
        if job and w.final and all(x.final for x in self.wafers if x.lot_id == w.lot_id):
            self._finish(job)

    def _job_changed(self, job: ProcessJob, src: str, dst: str) -> None:
        self.ctx.journal.set_lot_state(job.lot_id, src, dst)
        log.info("job state", lot_id=job.lot_id, src=src, dst=dst)
        self._emit(Event("job", self.clock.now(), lot_id=job.lot_id,
                         data={"src": src, "dst": dst}))

    def _comms_changed(self, h: ToolHandle[Any], state: str) -> None:
        job = self.jobs.get(h.current_lot or "")
        if job is None:
            return
        if state == "UNKNOWN":
            job.hold_for_comms()
        elif state == "OK" and job.lot_id not in self.paused:  # an operator's pause stays
            job.comms_back()

    def _finish(self, job: ProcessJob) -> None:
        self.paused.discard(job.lot_id)
        if job.state == "ABORTING":
            job.aborted()
            return
        job.comms_back()
        if job.state == "PROCESSING":
            job.finish()

    # ---- set-up / restore ------------------------------------------------------
    def _load(self) -> None:
        self._loaded = True
        for lot in self.lots:
            self._load_lot(lot)

    def _load_lot(self, lot: Any) -> None:
        j = self.ctx.journal
        flow = lot.flow
        j.add_lot(lot.lot_id, flow.name, [(x.slot, x.wafer_id) for x in lot.wafers],
                  {"variant": flow.variant})
        job = ProcessJob(lot.lot_id, listener=self._job_changed)
        job.restore(j.lot_state(lot.lot_id) or "QUEUED")
        self.jobs[lot.lot_id] = job
        for wid, slot, state, data in j.wafer_rows(lot.lot_id):
            w = Substrate(wid, lot.lot_id, slot, listener=self._wafer_changed)
            w.restore(state, data)
            self.wafers.append(w)

    # ---- workers ------------------------------------------------------------------
    def _hold(self, wafers: Iterable[Substrate], reason: str) -> None:
        for w in wafers:
            apply_fate(w, "hold", reason)

    def _check_stop(self) -> None:
        if self.stopping:
            raise Stopping("stop requested")

    async def _idle(self, wall_s: float) -> None:
        """Wait for a change (or ``wall_s``); Stopping once a stop was asked."""
        self._check_stop()
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), timeout=wall_s)
        except TimeoutError:
            pass
        self._check_stop()

    async def _work(self, pick: Callable[[], Any], done: Callable[[], bool],
                    wall_s: float) -> Any:
        """The next work item; None when there is none and (run mode) ``done()``."""
        while True:
            item = pick()
            if item is not None:
                return item
            if not self.serve_mode and done():
                return None
            await self._idle(wall_s)

    async def _claim(self, tool: str, wafers: Iterable[Substrate], step: str) -> bool:
        """Mark ``tool`` busy with a step, if it may start one now (else False: pick again)."""
        ws = tuple(wafers)
        if not await self._may_start(tool, ws):
            return False
        if any(w.final or self._taken(w) for w in ws):  # another tool of the kind was faster
            return False
        self.busy[tool] = Busy(step, ws)
        self.decisions.append(Decision(self.clock.now(), tool, step,
                                       tuple(w.wafer_id for w in ws)))
        return True

    def _release(self, tool: str) -> None:
        step = self.busy.pop(tool, None)
        self.changed.set()
        if step is not None:
            self._after_step(tool, step)

    # ---- the run --------------------------------------------------------------------
    async def _start(self) -> list[str]:
        if not self._loaded:
            self._load()
        notes = await reconcile_at_start(self.ctx, {w.wafer_id: w for w in self.wafers})
        self.recovery = notes
        for lot_id, job in self.jobs.items():
            if job.final:
                continue
            mine = [w for w in self.wafers if w.lot_id == lot_id]
            if not self.serve_mode or any(w.state != "NEEDS_PROCESSING" for w in mine):
                if job.state in NOT_STARTED:
                    job.start_processing()
            if all(w.final for w in mine):
                self._finish(job)
        return notes

    async def run(self) -> RunReport:
        t0, wall0 = self.clock.now(), self.clock.wall()
        notes = await self._start()
        try:
            await asyncio.gather(*(worker() for worker, _ in self._workers()))
        finally:
            for h in self.ctx.tools.values():
                await h.disconnect()
        self._hold([w for w in self.wafers if not w.final],
                   "held for disposition: not finished when the run ended")
        return self._report(t0, wall0, notes)

    def _report(self, t0: float, wall0: float, notes: list[str]) -> RunReport:
        report = build_report(self.wafers, self.jobs, self.ctx.tools, self.batches, notes,
                              span_s=self.clock.now() - t0, wall_s=self.clock.wall() - wall0)
        report.decisions = [replace(d, t=d.t - t0) for d in self.decisions]
        return report


async def run_lots(lots: Iterable[Any], tools: ToolSet, handling: MaterialHandling,
                   journal: Journal, clock: SeqClock, config: SequencerConfig | None = None,
                   on_event: Callable[[Event], None] | None = None) -> RunReport:
    """Run ``lots`` (``sequencer.process.recipes.Lot``) through the line; the CLI's entry point.

    Re-running with the same journal after a crash resumes: wafers are restored
    from the journal and every command without an outcome is reconciled with its
    tool before anything is sent.
    """
    sched = Scheduler(lots, tools, handling, journal, clock, config or SequencerConfig(),
                      on_event)
    return await sched.run()
