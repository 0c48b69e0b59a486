"""``LineControl`` over the real engine (``engine.Engine``): what ``viaform daemon`` serves.

Threads: the HTTP app's loop calls these methods; the engine (scheduler, drivers,
journal) runs on its own thread and loop. Control requests go to the engine loop
(``Engine.call``) and come back as the scheduler's ``Refused``/``Unknown`` mapped to
409/404. Queries answer from memory without a lock: they read the scheduler's
objects (copied with ``list(...)`` first; attribute reads are atomic under the GIL),
so a view may mix two instants a few microseconds apart, never a torn value. Lots
finished before this daemon started, and wafer histories, are read from the journal
file (``history.History``, read-only). Event times are unix time (the journal's tool
seconds ÷ time_scale); at time_scale 1 the two are the same.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from sequencer.faces.http.commands import changes_tool
from sequencer.faces.http.contract import (
    AlarmView,
    Conflict,
    HealthView,
    LineEvent,
    LotView,
    ManualReply,
    NotFound,
    PlanView,
    ToolBusy,
    ToolView,
    WaferHistoryEntry,
    WaferResults,
    WaferSummary,
    WaferView,
)
from sequencer.faces.http.manual import run_manual
from sequencer.line.config import ToolsConfig
from sequencer.line.engine import Engine
from sequencer.process.recipe_check import default_recipes_dir
from sequencer.process.recipes import Lot
from sequencer.runner.alarms import Event
from sequencer.runner.serving import Refused, Unknown
from sequencer.runner.tool_alarms import describe, holding
from sequencer.states.substrate import Substrate
from sequencer.store.history import History, LotRow, record_ack
from sequencer.store.manual_record import PREFIX

_DATA_KEYS = ("dose", "depth_um", "residual_um", "residual_after_cure_um", "cure_batch",
              "time_at_temp_s", "etch_time_s", "removed_um", "open", "developed", "cured",
              "etched", "phase", "cure_excursion")

#: gauge → the attribute path in a tool's status snapshot (drivers' *Status types)
_GAUGES: dict[str, tuple[str, ...]] = {
    "chamber_c": ("chamber_c",), "o2_ppm": ("o2_ppm",),
    "pressure_mtorr": ("readings", "pressure_mtorr"), "rf_forward_w": ("readings", "rf_forward_w"),
    # the operator's screen's cards, too
    "setpoint_c": ("setpoint_c",), "wafer_c": ("wafer_c",), "segment": ("segment",),
    "soak_left_s": ("soak_left_s",), "n2_flow_slm": ("n2_flow_slm",),
    "rf_reflected_w": ("readings", "rf_reflected_w"), "oes_co": ("readings", "oes_co"),
    "oes_o": ("readings", "oes_o"), "dose": ("dose",), "intensity": ("intensity",)}


def _held(sched: Any, tool: str, alarms: tuple[str, ...]) -> dict[str, Any]:
    """``held``/``held_reason`` of a tool view: held by the scheduler, or idle with an alarm
    latched that will hold it at its next step (shown now, named)."""
    hold = sched.holds.held.get(tool)
    if hold is not None:
        return {"held": True, "held_reason": f"{hold.reason} (acknowledge alarm "
                                             f"{hold.alarm_id} once the cause is gone)"}
    kind = sched.ctx.kind(tool)
    latched = holding(kind, alarms)
    if latched:
        return {"held": True, "held_reason": f"the {tool} reports {describe(kind, latched)}: "
                                             f"held at its next step until acknowledged"}
    return {"held": False, "held_reason": None}


class EngineLine:
    """The daemon's line: tools from ``cfg``, journal at ``db``."""

    def __init__(self, cfg: ToolsConfig, db: Path | str, *,
                 recipes_dir: Path | str | None = None,
                 overrides: dict[str, Any] | None = None,
                 status_poll_wall_s: float = 0.5) -> None:
        self.scale = cfg.time_scale
        self.engine = Engine(cfg, Path(db), recipes_dir=recipes_dir, overrides=overrides,
                             status_poll_wall_s=status_poll_wall_s, on_event=self._forward)
        self._queue: asyncio.Queue[LineEvent] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alarms: dict[int, AlarmView] = {}
        self._alarm_lock = threading.Lock()
        self._past: dict[str, LotRow] = {}  # lots finished before this daemon started
        self._created: dict[str, float] = {}  # lot → unix time submitted
        self._history: History | None = None

    # ---- lifecycle and events --------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        await asyncio.to_thread(self.engine.start)
        self._history = History(self.engine.db, self.scale, self.engine.cfg.kinds)
        active = set(self._sched().jobs)
        rows = self._history.lots()
        self._created = {r.lot_id: r.created for r in rows}
        self._past = {r.lot_id: r for r in rows if r.lot_id not in active}
        with self._alarm_lock:
            for a in self._history.alarms():
                self._alarms[a.id] = AlarmView(
                    id=a.id, tool=a.tool, kind=a.kind, text=a.text, lot_id=a.lot_id,
                    wafer_ids=a.wafer_ids, raised_at=a.t, active=a.cleared_t is None,
                    acked_at=a.cleared_t, acked_by=a.acked_by)

    async def stop(self) -> None:
        await asyncio.to_thread(self.engine.stop)
        if self._history is not None:
            self._history.close()

    def _forward(self, event: Event) -> None:
        """On the engine thread: keep the alarm list, hand the event to the app's loop."""
        t = event.t / self.scale
        if event.kind == "alarm" and "id" in event.data:
            d = event.data
            view = AlarmView(id=int(d["id"]), tool=event.tool or "", kind=str(d.get("kind")),
                             text=str(d.get("text")), lot_id=event.lot_id,
                             wafer_ids=list(d.get("wafers", [])), raised_at=t, active=True)
            with self._alarm_lock:
                self._alarms[view.id] = view
        line_event = LineEvent(kind=event.kind, t=t, lot_id=event.lot_id,
                               wafer_id=event.wafer_id, tool=event.tool, step=event.step,
                               data=dict(event.data))
        if self._loop is not None and self._queue is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line_event)

    async def events(self) -> AsyncIterator[LineEvent]:
        assert self._queue is not None, "start() first"
        while True:
            yield await self._queue.get()

    def _sched(self) -> Any:
        sched = self.engine.sched
        if sched is None:
            raise Conflict("the engine is not running")
        return sched

    async def _control(self, fn: Any, *args: Any) -> Any:
        try:
            return await self.engine.call(fn, *args)
        except Unknown as exc:
            raise NotFound(str(exc)) from None
        except Refused as exc:
            raise Conflict(str(exc)) from None

    # ---- lots and wafers -------------------------------------------------------------
    def tools(self) -> list[str]:
        """Every tool of tools.yaml, by name, in the file's order."""
        return list(self.engine.cfg.kinds)

    async def submit_lot(self, lot: Lot) -> str:
        await self._control(self.engine.submit_lot, lot)
        self._created[lot.lot_id] = time.time()
        return lot.lot_id

    def lots(self) -> list[LotView]:
        sched = self._sched()
        live = [self._lot_view(lot_id) for lot_id in list(sched.jobs)]
        return [self._past_view(r) for r in self._past.values()] + live

    def lot(self, lot_id: str) -> LotView:
        if lot_id in self._sched().jobs:
            return self._lot_view(lot_id)
        if lot_id in self._past:
            return self._past_view(self._past[lot_id])
        raise NotFound(f"no lot {lot_id!r}")

    def _lot_view(self, lot_id: str) -> LotView:
        sched = self._sched()
        lot = next(x for x in list(sched.lots) if x.lot_id == lot_id)
        wafers = [self._summary(w) for w in list(sched.wafers) if w.lot_id == lot_id]
        return LotView(lot_id=lot_id, flow=lot.flow.name, state=sched.jobs[lot_id].state,
                       submitted_at=self._created.get(lot_id, 0.0), wafers=wafers,
                       eta=self.engine.etas.etas.get(lot_id))

    @staticmethod
    def _summary(w: Substrate) -> WaferSummary:
        d = w.data
        return WaferSummary(wafer_id=w.wafer_id, slot=w.slot, state=w.state,
                            location=d.location, step=d.step, reason=d.reason or None)

    def _past_view(self, r: LotRow) -> LotView:
        return LotView(lot_id=r.lot_id, flow=r.flow, state=r.state, submitted_at=r.created,
                       wafers=[WaferSummary(wafer_id=w, slot=s, state=st,
                                            location=str(d.get("location", "stocker")),
                                            step=str(d.get("step", "")),
                                            reason=d.get("reason") or None)
                               for w, s, st, d in r.wafers])

    async def pause(self, lot_id: str) -> LotView:
        return await self._lot_action(lot_id, "pause_lot")

    async def resume(self, lot_id: str) -> LotView:
        return await self._lot_action(lot_id, "resume_lot")

    async def abort(self, lot_id: str) -> LotView:
        return await self._lot_action(lot_id, "abort_lot")

    async def _lot_action(self, lot_id: str, action: str) -> LotView:
        if lot_id in self._past:
            raise Conflict(f"lot {lot_id} is {self._past[lot_id].state}")
        await self._control(getattr(self._sched(), action), lot_id)
        return self.lot(lot_id)

    def wafer(self, wafer_id: str) -> WaferView:
        live = next((w for w in list(self._sched().wafers) if w.wafer_id == wafer_id), None)
        assert self._history is not None
        if live is not None:
            lot_id, slot, state = live.lot_id, live.slot, live.state
            data = live.data_dict()
        else:
            row = self._history.wafer(wafer_id)
            if row is None:
                raise NotFound(f"no wafer {wafer_id!r}")
            lot_id, slot, state, data = row
        history = [WaferHistoryEntry(t=h.t, state=h.state, location=h.location, step=h.step,
                                     phase=h.phase, note=h.note)
                   for h in self._history.wafer_history(wafer_id)]
        return WaferView(wafer_id=wafer_id, lot_id=lot_id, slot=slot, state=state,
                         location=str(data.get("location", "")), step=str(data.get("step", "")),
                         reason=data.get("reason") or None,
                         data={**{k: data.get(k) for k in _DATA_KEYS if data.get(k) is not None},
                               **{f"{step}.tool": tool
                                  for step, tool in (data.get("ran") or {}).items()}},
                         history=history)

    async def release_wafers(self, wafer_ids: list[str], reason: str,
                             who: str) -> list[WaferView]:
        return await self._dispose(wafer_ids, "release", reason, who)

    async def scrap_wafers(self, wafer_ids: list[str], reason: str,
                           who: str) -> list[WaferView]:
        return await self._dispose(wafer_ids, "scrap", reason, who)

    async def _dispose(self, wafer_ids: list[str], action: str, reason: str,
                       who: str) -> list[WaferView]:
        """On the engine loop (``ServingScheduler.dispose_wafers``): all or nothing.

        A wafer of a lot that was already finished when this daemon started is not in the
        engine: refused (Conflict) with what to do — the engine resumes only unfinished
        lots, so such a wafer is released on the journal with the daemon stopped
        (``viaform wafer release`` re-opens its job) and the next start resumes it."""
        sched = self._sched()
        live = {w.wafer_id for w in list(sched.wafers)}
        assert self._history is not None
        for wid in wafer_ids:
            if wid in live:
                continue
            row = self._history.wafer(wid)
            if row is None:
                raise NotFound(f"no wafer {wid!r}")
            lot = self._past.get(row[0])
            raise Conflict(f"{wid} belongs to lot {row[0]}, "
                           f"{lot.state if lot else 'finished'} before this daemon started: "
                           f"stop the daemon, `viaform wafer {action} {wid} --reason …` on "
                           f"the journal, then start the daemon again")
        await self._control(sched.dispose_wafers, list(wafer_ids), action, reason, who)
        return [self.wafer(wid) for wid in wafer_ids]

    # ---- tools ---------------------------------------------------------------------------
    def _handle(self, tool: str) -> Any:
        handles = self._sched().ctx.tools
        if tool not in handles:
            raise NotFound(f"no tool {tool!r} (tools: {', '.join(handles)})")
        return handles[tool]

    def tool_status(self, tool: str) -> ToolView:
        h, sched = self._handle(tool), self._sched()
        step = sched.busy.get(tool)
        first = step.wafers[0] if step is not None and step.wafers else None
        taken_by = sched.taken.get(tool) or sched.take_pending.get(tool)
        return ToolView(tool=tool, kind=h.kind, connected=h.comms == "OK",
                        state=h.last_state if h.comms == "OK" else "UNKNOWN",
                        busy=step is not None, lot_id=first.lot_id if first else None,
                        wafer_id=first.wafer_id if first else None,
                        step=step.step if step else None, engineering=tool in sched.taken,
                        take_pending=tool in sched.take_pending, taken_by=taken_by,
                        alarms=list(h.last_alarms), **_held(sched, tool, h.last_alarms))

    def tool_busy(self, tool: str) -> bool:
        self._handle(tool)
        return tool in self._sched().busy

    async def take(self, tool: str, force: bool, who: str) -> ToolView:
        self._handle(tool)
        await self._control(self._sched().take, tool, who, force)
        return self.tool_status(tool)

    async def give(self, tool: str, who: str) -> ToolView:
        self._handle(tool)
        await self._control(self._sched().give, tool, who)
        return self.tool_status(tool)

    async def manual(self, tool: str, command: str, args: Mapping[str, Any],
                     who: str = "?") -> ManualReply:
        h = self._handle(tool)
        reply = await self.engine.call(self._manual, h, command, dict(args), who)
        return ManualReply(tool=tool, command=command, reply=reply)

    async def _manual(self, h: Any, command: str, args: dict[str, Any], who: str) -> Any:
        """On the engine loop: no step may start on the tool while the command runs."""
        sched = self._sched()
        try:
            sched.manual_begin(h.name, changes_tool(command, args))
        except Refused as exc:
            raise ToolBusy(f"{exc}; '{command}' would change the tool") from None
        try:
            def emit(cmd: str, duration_s: float, outcome: str) -> None:
                sched._emit(Event("command", sched.clock.now(), tool=h.name, data={
                    "command": cmd, "duration_s": duration_s, "outcome": outcome}))
            reply = await run_manual(h, command, args, emit)
            if changes_tool(command, args):  # who did what, for a later failure's reason
                iid = sched.ctx.journal.intent(h.name, f"{PREFIX}{command}",
                                               args={"by": who, **args})
                sched.ctx.journal.outcome(iid, "OK", f"manual command by {who} (daemon)")
            return reply
        finally:
            sched.manual_end(h.name)

    # ---- alarms, health ------------------------------------------------------------------
    def alarms(self, active_only: bool) -> list[AlarmView]:
        with self._alarm_lock:
            return [a for a in self._alarms.values() if a.active or not active_only]

    async def ack_alarm(self, alarm_id: int, who: str) -> AlarmView:
        with self._alarm_lock:
            alarm = self._alarms.get(alarm_id)
        if alarm is None:
            raise NotFound(f"no alarm {alarm_id}")
        if not alarm.active:
            return alarm
        now = time.time()

        def ack() -> None:
            sched = self._sched()
            record_ack(sched.ctx.journal.db, alarm_id, now, who)
            sched.ctx.alarms.ack(alarm_id, alarm.tool, who)

        await self.engine.call(ack)
        view = alarm.model_copy(update={"active": False, "acked_at": now, "acked_by": who})
        with self._alarm_lock:
            self._alarms[alarm_id] = view
        return view

    # ---- constants and gauges (the GEM face's equipment constants and SVs) ---------------
    def constants(self) -> dict[str, float]:
        cfg = self._sched().ctx.config
        out = {"q_develop_cure_s": float(cfg.q_develop_cure_s),
               "q_cure_etch_s": float(cfg.q_cure_etch_s), "max_batch": float(cfg.max_batch)}
        out.update({f"poll_s.{t}": float(v) for t, v in cfg.poll_s.items()})
        return out

    async def set_constant(self, name: str, value: float, who: str) -> None:
        if name not in self.constants():
            raise NotFound(f"no constant {name!r} (constants: {', '.join(self.constants())})")

        def apply() -> None:  # on the engine loop: a step reads it at its next check/poll
            cfg = self._sched().ctx.config
            if name.startswith("poll_s."):
                cfg.poll_s[name.removeprefix("poll_s.")] = float(value)
            elif name == "max_batch":
                cfg.max_batch = int(value)
            else:
                setattr(cfg, name, float(value))
        await self.engine.call(apply)

    def wafer_results(self, wafer_id: str) -> WaferResults | None:
        live = next((w for w in list(self._sched().wafers) if w.wafer_id == wafer_id), None)
        if live is None:
            return None
        data = live.data_dict()
        return WaferResults(**self._summary(live).model_dump(), data={
            k: data.get(k) for k in _DATA_KEYS if data.get(k) is not None})

    def tool_readings(self, tool: str) -> dict[str, float]:
        status = self._handle(tool).last_status
        out: dict[str, float] = {}
        for name, path in _GAUGES.items():
            value: Any = status
            for attr in path:
                value = getattr(value, attr, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[name] = float(value)
        return out

    def time_scale(self) -> float:
        return float(self.scale)

    def recipes_dir(self) -> Path:
        given = self.engine.recipes_dir
        return Path(given) if given is not None else default_recipes_dir()

    def plan(self) -> PlanView:
        last = self.engine.etas.last
        if last is None:
            return PlanView()
        return PlanView(planned_at=last.t0 / self.engine.clock.time_scale, **last.to_json())

    def health(self) -> HealthView:
        sched = self.engine.sched
        tools = {t: sched is not None and sched.ctx.tools[t].comms == "OK"
                 for t in self.engine.cfg.kinds}
        alive = self.engine.alive and sched is not None and not sched.stopping
        active = 0 if sched is None else sum(1 for j in list(sched.jobs.values())
                                             if not j.final)
        return HealthView(status="ok" if alive and all(tools.values()) else "degraded",
                          journal=alive, tools=tools, lots_active=active)
