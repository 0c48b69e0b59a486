"""The scheduler in serve mode: the daemon's engine core (see ``sequencer.runner.scheduler``).

``ServingScheduler.serve()`` resumes the journal's lots, then runs what is
``submit``-ted until ``stop()``. On top of the batch scheduler it adds:

* per lot (E40): ``pause_lot`` (PROCESSING → PAUSING → PAUSED once the lot's running
  steps end; no new step starts for it), ``resume_lot``, ``abort_lot`` (ABORTING:
  wafers waiting between steps end now, SKIPPED if never started, else ABORTED; a
  running step is never cut mid-command, its wafers are ABORTED when it ends);
* per tool: ``take`` (ENGINEERING now if idle, else when the step ends; no job step
  starts on a taken tool), ``give``; ``manual_begin``/``manual_end`` around a manual
  command (refused if it changes the tool while a step runs; no step starts meanwhile);
* comms: a lost tool is reconnected for ever with bounded back-off (one COMMS_LOST
  alarm; its work waits, the job pauses, the other tools go on); a tool that stays
  in alarm (ToolDown) holds only the step's wafers, with an alarm;
* graceful ``stop()``: no new step; a running step ends at its next query or poll
  (``Stopping``): the command in flight has finished and is journaled, and the step
  resumes from its journaled phase at the next start. A step making its failed
  wafer's tool safe finishes first.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import structlog

from sequencer.runner.alarms import Event
from sequencer.runner.clock import SeqClock
from sequencer.runner.disposition import Disposition, Refused, Unknown
from sequencer.runner.protocols import state_name
from sequencer.runner.scheduler import (
    CURRENT_TOOL,
    IDLE_WALL_S,
    NOT_STARTED,
    Busy,
    Scheduler,
    Stopping,
)
from sequencer.runner.steps import D, StepContext, ToolDown, ToolHandle, called
from sequencer.states.substrate import Substrate

log = structlog.get_logger("viaform.daemon.engine")

RECONNECT_FOR_EVER = 10**9  # reconnect attempts once serving (the back-off is bounded)
#: the driver reads whose reply is noted as the tool's last reported state
NOTED = frozenset({"state", "status", "readings", "etch_status", "condition"})
P = ParamSpec("P")
T = TypeVar("T")


class ServeHandle(ToolHandle[D]):
    """A tool handle that a graceful stop interrupts at its next query, that keeps the
    tool's last reported state (for the status view), and whose concurrent recoveries (a
    step and the idle poller) share one reconnect, which ``stop()`` may cancel."""

    def __init__(self, name: str, driver: D, ctx: StepContext,
                 sched: ServingScheduler, kind: str | None = None) -> None:
        super().__init__(name, driver, ctx, kind)
        self.sched = sched
        self.last_state: str | None = None
        self.last_alarms: tuple[str, ...] = ()
        #: the last status snapshot (gauges for GEM SVs and the cards): a ``status``, or
        #: the oven's ``readings`` (its input registers: what a cure polls)
        self.last_status: Any = None
        self.recovery: asyncio.Future[dict[str, Any]] | None = None

    async def q(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self.sched.check_interrupt(self.name)
        value = await super().q(fn, *args, **kwargs)
        if (method := called(fn)) in NOTED:
            self.note(method, value)
        return value

    def note(self, method: str, value: Any) -> None:
        if method == "condition":  # (state, alarms) from one line: both are the tool's now
            state, alarms = value
            self.last_state = state_name(state)
            self.last_alarms = tuple(str(a) for a in alarms)
            return
        if method == "readings" and not hasattr(value, "state"):
            return  # the etcher's gauges alone (no state): not a snapshot of the tool
        st = getattr(value, "state", value)
        self.last_state = state_name(st) if st is not None else "NONE"
        if method in ("status", "readings"):  # the oven's readings: a cure's every poll
            self.last_status = value
            alarms = getattr(value, "alarms", ())
            names = alarms.names() if hasattr(alarms, "names") else alarms
            self.last_alarms = tuple(str(a) for a in names or ())

    async def cmd(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.comms == "DOWN":  # given up at start-up: serving, we try again
            await self.recover(f"{called(fn)}: reconnecting")
        return await super().cmd(fn, *args, **kwargs)

    async def recover(self, why: str) -> dict[str, Any]:
        if self.recovery is None or self.recovery.done():
            self.recovery = asyncio.ensure_future(super().recover(why))
        try:
            return await asyncio.shield(self.recovery)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.sched.stopping and task is not None and not task.cancelling():
                raise Stopping(self.name) from None
            raise


class GatedClock:
    """The steps' clock: a poll's sleep is where a graceful stop interrupts a step."""

    def __init__(self, inner: SeqClock, check: Callable[[str | None], None]) -> None:
        self._inner, self._check = inner, check
        self.time_scale = inner.time_scale

    def now(self) -> float:
        return self._inner.now()

    def wall(self) -> float:
        return self._inner.wall()

    def to_wall(self, sim_s: float) -> float:
        return self._inner.to_wall(sim_s)

    async def sleep(self, sim_s: float) -> None:
        self._check(CURRENT_TOOL.get())
        await self._inner.sleep(sim_s)
        self._check(CURRENT_TOOL.get())


class ServingScheduler(Disposition, Scheduler):
    """See the module docstring. Every method runs on the scheduler's event loop."""

    serve_mode = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken: dict[str, str] = {}  # tool → who: ENGINEERING, no job step starts there
        self.take_pending: dict[str, str] = {}  # tool → who: ENGINEERING when the step ends
        self.manual: dict[str, int] = dict.fromkeys(self.ctx.tools, 0)
        self._tasks: list[asyncio.Task[None]] = []

    # ---- hooks ----------------------------------------------------------------------
    def _step_clock(self, clock: SeqClock) -> Any:
        return GatedClock(clock, self.check_interrupt)

    def _handle(self, name: str, driver: Any, kind: str) -> ToolHandle[Any]:
        return ServeHandle(name, driver, self.ctx, self, kind)

    def _load_lot(self, lot: Any) -> None:
        super()._load_lot(lot)
        if self.jobs[lot.lot_id].state in ("PAUSING", "PAUSED"):
            self.paused.add(lot.lot_id)  # kept over a restart: an operator resumes it

    def _may_run(self, w: Substrate) -> bool:
        """No new step for a paused or aborted lot (a step begun before resumes)."""
        if w.final:
            return False
        if w.data.step:
            return True
        return w.lot_id not in self.paused and \
            self.jobs[w.lot_id].state not in ("ABORTING", "ABORTED")

    async def _may_start(self, tool: str, wafers: tuple[Substrate, ...]) -> bool:
        if tool in self.taken or tool in self.take_pending or self.manual[tool] \
                or self.ctx.tools[tool].comms != "OK":
            await self._idle(IDLE_WALL_S)
            return False
        if not all(self._may_run(w) for w in wafers):
            return False
        for lot_id in dict.fromkeys(w.lot_id for w in wafers):
            if self.jobs[lot_id].state in NOT_STARTED:
                self.jobs[lot_id].start_processing()
        return True

    def _after_step(self, tool: str, step: Busy) -> None:
        self.ctx.tools[tool].current_lot = None  # a later comms loss pauses no lot
        if tool in self.take_pending:
            self.taken[tool] = who = self.take_pending.pop(tool)
            self._emit(Event("take", self.clock.now(), tool=tool, data={"by": who}))
        for lot_id in dict.fromkeys(w.lot_id for w in step.wafers):
            self._settle(lot_id)

    def _exposure_open(self) -> bool:
        """Not while every exposure cell is taken for engineering."""
        if all(t in self.taken for t in self.ctx.of_kind("exposure")):
            return False
        return super()._exposure_open()

    def _on_tool_down(self, tool: str, exc: ToolDown, wafers: Iterable[Substrate]) -> bool:
        live = [w for w in wafers if not w.final]
        self.ctx.alarms.raise_(tool, "TOOL_DOWN", exc.reason,
                               lot_id=live[0].lot_id if live else None,
                               wafer_ids=[w.wafer_id for w in live])
        self._hold(live, f"held for disposition: {tool} down: {exc.reason}")
        return True

    def _running(self, lot_id: str) -> bool:
        return any(w.lot_id == lot_id for b in self.busy.values() for w in b.wafers)

    def _settle(self, lot_id: str) -> None:
        """After a step of the lot: PAUSING → PAUSED, ABORTING → its waiting wafers out."""
        job = self.jobs[lot_id]
        if self._running(lot_id):
            return
        if job.state == "PAUSING" and lot_id in self.paused:
            job.paused()
        if job.state == "ABORTING":
            for w in self.wafers:
                if w.lot_id == lot_id and not w.final and not w.data.step:
                    if w.state == "NEEDS_PROCESSING":
                        w.skip(reason="lot aborted")
                    else:
                        w.abort(reason="lot aborted")
            if job.state == "ABORTING" and all(w.final for w in self.wafers
                                               if w.lot_id == lot_id):
                job.aborted()

    # ---- running ----------------------------------------------------------------------
    async def serve(self) -> None:
        """Resume the journal's lots (reconciled first, with a run's bounded reconnects),
        then run what is submitted until ``stop()``; never ends on a tool's error."""
        try:
            await self._start()
            self.ctx.config = dataclasses.replace(self.ctx.config,
                                                  reconnect_attempts=RECONNECT_FOR_EVER)
            self._tasks = [asyncio.create_task(self._supervised(fn, tool), name=tool)
                           for fn, tool in self._workers()]
            await asyncio.gather(*self._tasks, return_exceptions=True)
        except Stopping:
            pass
        finally:
            await self._disconnect()

    async def _disconnect(self) -> None:
        """Close every tool's connection (on its worker, after the calls in flight), then the
        workers: a stopped engine holds no connection (a tool takes only a few at once, so
        a daemon restarted in-process would otherwise lock itself out)."""
        for h in self.ctx.tools.values():
            await h.disconnect()

    async def _supervised(self, worker: Callable[[], Any], tool: str) -> None:
        """A worker that fails unexpectedly is restarted (alarm raised); the line goes on."""
        while not self.stopping:
            try:
                await worker()
                return
            except Exception as exc:
                log.exception("worker failed; restarting it", worker=tool)
                self.ctx.alarms.raise_(tool, "WORKER_FAILED", f"{type(exc).__name__}: {exc}")
                if tool in self.busy:
                    self._release(tool)
                await asyncio.sleep(1.0)

    def check_interrupt(self, tool: str | None) -> None:
        """Stopping inside a step on ``tool`` once a stop was asked, unless the step is
        making its failed (final) wafer's tool safe: that finishes first."""
        if not self.stopping:
            return
        step = self.busy.get(tool or "")
        if step is not None and step.wafers and all(w.final for w in step.wafers):
            return
        raise Stopping(f"stop requested ({tool})")

    async def stop(self, timeout_wall_s: float = 30.0) -> None:
        """Graceful: see the module docstring. A reconnect in progress is cancelled."""
        self.stopping = True
        self.changed.set()
        for h in self.ctx.tools.values():
            rec = getattr(h, "recovery", None)
            if rec is not None and not rec.done():
                rec.cancel()
        live = [t for t in self._tasks if not t.done()]
        if live:
            _, pending = await asyncio.wait(live, timeout=timeout_wall_s)
            for t in pending:
                log.warning("worker did not stop in time; cancelled", worker=t.get_name())
                t.cancel()

    # ---- control -----------------------------------------------------------------------
    def submit(self, lot: Any) -> None:
        """Add a lot while serving (it runs behind, or overlapped with, the others)."""
        self.check_submit(lot)
        self.lots.append(lot)
        self.flows[lot.lot_id] = lot.flow
        self._load_lot(lot)
        self._emit(Event("job", self.clock.now(), lot_id=lot.lot_id,
                         data={"src": None, "dst": "QUEUED"}))
        self.changed.set()

    def check_submit(self, lot: Any) -> None:
        """Refused if the lot id, or a wafer id, is already used."""
        if lot.lot_id in self.jobs or self.ctx.journal.lot_state(lot.lot_id) is not None:
            raise Refused(f"lot id {lot.lot_id} is already used")
        active = {w.wafer_id: w.lot_id for w in self.wafers if not w.final}
        clash = [x.wafer_id for x in lot.wafers if x.wafer_id in active]
        if clash:
            raise Refused(f"wafer(s) {', '.join(clash)} already in active lot "
                          f"{active[clash[0]]}")
        ids = [x.wafer_id for x in lot.wafers]
        rows = self.ctx.journal.db.execute(
            f"SELECT wafer_id, lot_id FROM wafers WHERE wafer_id IN ({','.join('?' * len(ids))})",
            ids).fetchall()
        if rows:
            raise Refused(f"wafer id(s) {', '.join(r[0] for r in rows)} already used in lot "
                          f"{rows[0][1]} (the journal keeps each wafer's history under its id)")

    def _job(self, lot_id: str) -> Any:
        if lot_id not in self.jobs:
            raise Unknown(f"no active lot {lot_id!r}")
        return self.jobs[lot_id]

    def pause_lot(self, lot_id: str) -> None:
        job = self._job(lot_id)
        if job.state != "PROCESSING":
            raise Refused(f"lot {lot_id} is {job.state}: only a PROCESSING lot pauses")
        self.paused.add(lot_id)
        job.pause()
        self._settle(lot_id)

    def resume_lot(self, lot_id: str) -> None:
        job = self._job(lot_id)
        if job.state not in ("PAUSING", "PAUSED"):
            raise Refused(f"lot {lot_id} is {job.state}: only a paused lot resumes")
        self.paused.discard(lot_id)
        job.resume()
        self.changed.set()

    def abort_lot(self, lot_id: str) -> None:
        job = self._job(lot_id)
        if job.final or job.state == "ABORTING":
            raise Refused(f"lot {lot_id} is already {job.state}")
        self.paused.discard(lot_id)
        job.abort_job()
        self._settle(lot_id)
        self.changed.set()

    def _tool(self, tool: str) -> None:
        if tool not in self.ctx.tools:
            raise Unknown(f"no tool {tool!r} (tools: {', '.join(self.ctx.tools)})")

    def take(self, tool: str, who: str, force: bool = False) -> bool:
        """ENGINEERING now (True) if no step runs on ``tool``, else when it ends (False);
        ``force`` also pauses the lots of the running step now."""
        self._tool(tool)
        if tool in self.taken or tool in self.take_pending:
            by = self.taken.get(tool) or self.take_pending.get(tool)
            raise Refused(f"{tool} is already taken by {by}")
        step = self.busy.get(tool)
        if step is None:
            self.taken[tool] = who
            self._emit(Event("take", self.clock.now(), tool=tool, data={"by": who}))
            return True
        if force:
            for lot_id in dict.fromkeys(w.lot_id for w in step.wafers):
                if self.jobs[lot_id].state == "PROCESSING":
                    self.pause_lot(lot_id)
        self.take_pending[tool] = who
        return False

    def give(self, tool: str, who: str) -> None:
        self._tool(tool)
        if tool not in self.taken and tool not in self.take_pending:
            raise Refused(f"{tool} is not taken")
        self.take_pending.pop(tool, None)
        if self.taken.pop(tool, None) is not None:
            self._emit(Event("give", self.clock.now(), tool=tool, data={"by": who}))
        self.changed.set()

    def manual_begin(self, tool: str, changes: bool) -> None:
        """Refused if the command would change ``tool`` while a job step runs on it; no
        step starts there until ``manual_end``."""
        self._tool(tool)
        step = self.busy.get(tool)
        if changes and step is not None:
            w = step.wafers[0] if step.wafers else None
            raise Refused(f"{tool} is running step {step.step} of lot "
                          f"{w.lot_id if w else '?'} (wafer {w.wafer_id if w else '?'})")
        self.manual[tool] += 1

    def manual_end(self, tool: str) -> None:
        self.manual[tool] -= 1
        self.changed.set()
