"""An in-memory ``LineControl``: no tools, no journal, no scheduler. A fake, honestly.

For the daemon's tests and ``--fake`` dev mode (the CLI, an HTTP client or a
dashboard can be built against it without simulators). It keeps the rules the
real engine must keep (E40/E90 state names, atomic submit, manual commands
refused while a step runs, take effective when the step ends) but nothing
moves unless told: tests drive it with ``start_step``/``end_step``/
``hold_wafer``/``lose_comms``/``raise_alarm`` (safe to call from any thread); ``autorun``
walks each lot through expose → cure → etch with a fixed step time for demos.
Manual commands answer from a small settings table, never from a tool.

Held wafers (STOPPED, awaiting disposition) keep their lot open: a lot is
PROCESS_COMPLETE only once every wafer is final and none is held. An engineer's
release sends a held wafer on to the step after the one it was held in (or to
PROCESSED if none is left); scrap ends it REJECTED.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sequencer.recipes import Lot

from .line import (
    COMMANDS,
    AlarmView,
    Conflict,
    HealthView,
    LineEvent,
    LotView,
    ManualReply,
    NotFound,
    ToolBusy,
    ToolRejected,
    ToolUnreachable,
    ToolView,
    WaferHistoryEntry,
    WaferSummary,
    WaferView,
    changes_tool,
)

TOOLS = ("exposure", "oven", "etcher")
ROUTE = (("exposure", "expose"), ("oven", "cure"), ("etcher", "etch"))
LOT_FINAL = frozenset({"PROCESS_COMPLETE", "STOPPED", "ABORTED"})
WAFER_FINAL = frozenset({"PROCESSED", "ABORTED", "STOPPED", "REJECTED", "LOST", "SKIPPED"})
SETTINGS: dict[str, dict[str, Any]] = {
    "exposure": {"dose": 318.0, "focus": 0.0, "develop_time": 90, "reticle": "VIA-200"},
    "etcher": {"o2": 90.0, "cf4": 10.0, "pressure": 200.0, "rf_power": 300.0,
               "etch_time": 180, "overetch": 30, "endpoint": True, "target": 2.0},
    "oven": {"o2_limit": 20, "n2_flow": 50.0, "high_limit": 345.0, "unload_temp": 100.0},
}


@dataclass
class _Wafer:
    wafer_id: str
    lot_id: str
    slot: int
    state: str = "NEEDS_PROCESSING"
    location: str = "stocker"
    step: str = ""
    reason: str | None = None
    history: list[WaferHistoryEntry] = field(default_factory=list)


@dataclass
class _Lot:
    lot_id: str
    flow: str
    wafers: list[_Wafer]
    submitted_at: float
    state: str = "QUEUED"


@dataclass
class _Tool:
    name: str
    connected: bool = True
    lot_id: str | None = None
    wafer_id: str | None = None
    step: str | None = None
    started: float = 0.0
    engineering: bool = False
    take_pending: bool = False
    taken_by: str | None = None
    alarms: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


class FakeLine:
    """In-memory line; every public method is thread-safe (one lock)."""

    def __init__(self, autorun_step_s: float | None = None) -> None:
        self._lock = threading.RLock()
        self._tools = {t: _Tool(t, settings=dict(SETTINGS[t])) for t in TOOLS}
        self._lots: dict[str, _Lot] = {}
        self._alarms: list[AlarmView] = []
        self._queue: asyncio.Queue[LineEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._autorun_step_s = autorun_step_s
        self._runner: asyncio.Task[None] | None = None
        self.stopped = False

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._autorun_step_s is not None:
            self._runner = asyncio.create_task(self._autorun(self._autorun_step_s))

    async def stop(self) -> None:
        self.stopped = True
        if self._runner is not None:
            self._runner.cancel()

    def _emit(self, kind: str, **kw: Any) -> None:
        event = LineEvent(kind=kind, t=time.time(), **kw)
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:
            loop.call_soon_threadsafe(self._queue.put_nowait, event)
        else:
            self._queue.put_nowait(event)

    async def events(self) -> AsyncIterator[LineEvent]:
        while True:
            yield await self._queue.get()

    # --- lots -----------------------------------------------------------------------
    def tools(self) -> list[str]:
        return list(TOOLS)

    async def submit_lot(self, lot: Lot) -> str:
        with self._lock:
            if lot.lot_id in self._lots:
                raise Conflict(f"lot {lot.lot_id} was already submitted")
            active = {w.wafer_id: w.lot_id for lt in self._lots.values()
                      if lt.state not in LOT_FINAL for w in lt.wafers}
            clash = [w.wafer_id for w in lot.wafers if w.wafer_id in active]
            if clash:
                raise Conflict(f"wafer(s) {', '.join(clash)} already in active lot "
                               f"{active[clash[0]]}")
            now = time.time()
            wafers = [_Wafer(w.wafer_id, lot.lot_id, w.slot) for w in lot.wafers]
            for w in wafers:
                w.history.append(WaferHistoryEntry(t=now, state=w.state, location=w.location,
                                                   note="submitted"))
            self._lots[lot.lot_id] = _Lot(lot.lot_id, lot.flow.name, wafers, now)
            self._emit("job", lot_id=lot.lot_id, data={"src": None, "dst": "QUEUED"})
            return lot.lot_id

    def lots(self) -> list[LotView]:
        with self._lock:
            return [self._lot_view(lt) for lt in self._lots.values()]

    def lot(self, lot_id: str) -> LotView:
        with self._lock:
            return self._lot_view(self._get_lot(lot_id))

    def _get_lot(self, lot_id: str) -> _Lot:
        if lot_id not in self._lots:
            raise NotFound(f"no lot {lot_id!r}")
        return self._lots[lot_id]

    def _lot_view(self, lt: _Lot) -> LotView:
        return LotView(lot_id=lt.lot_id, flow=lt.flow, state=lt.state,
                       submitted_at=lt.submitted_at,
                       wafers=[WaferSummary(wafer_id=w.wafer_id, slot=w.slot, state=w.state,
                                            location=w.location, step=w.step, reason=w.reason)
                               for w in lt.wafers])

    def _set_lot(self, lt: _Lot, state: str) -> None:
        src, lt.state = lt.state, state
        self._emit("job", lot_id=lt.lot_id, data={"src": src, "dst": state})

    async def pause(self, lot_id: str) -> LotView:
        with self._lock:
            lt = self._get_lot(lot_id)
            if lt.state != "PROCESSING":
                raise Conflict(f"lot {lot_id} is {lt.state}: only a PROCESSING lot pauses")
            self._set_lot(lt, "PAUSED")
            return self._lot_view(lt)

    async def resume(self, lot_id: str) -> LotView:
        with self._lock:
            lt = self._get_lot(lot_id)
            if lt.state not in ("PAUSING", "PAUSED"):
                raise Conflict(f"lot {lot_id} is {lt.state}: only a paused lot resumes")
            self._set_lot(lt, "PROCESSING")
            return self._lot_view(lt)

    async def abort(self, lot_id: str) -> LotView:
        with self._lock:
            lt = self._get_lot(lot_id)
            if lt.state in LOT_FINAL:
                raise Conflict(f"lot {lot_id} is already {lt.state}")
            for tool in self._tools.values():
                if tool.lot_id == lot_id:
                    self._finish_step(tool, "aborted")
            for w in lt.wafers:
                if w.state == "IN_PROCESS":
                    self._set_wafer(w, "ABORTED", reason="lot aborted")
                elif w.state == "NEEDS_PROCESSING":
                    self._set_wafer(w, "SKIPPED", reason="lot aborted")
            self._set_lot(lt, "ABORTED")
            return self._lot_view(lt)

    # --- wafers ---------------------------------------------------------------------
    def _find_wafer(self, wafer_id: str) -> _Wafer:
        found = [w for lt in self._lots.values() for w in lt.wafers if w.wafer_id == wafer_id]
        if not found:
            raise NotFound(f"no wafer {wafer_id!r}")
        return found[-1]  # the latest lot that carried this id

    def wafer(self, wafer_id: str) -> WaferView:
        with self._lock:
            w = self._find_wafer(wafer_id)
            return WaferView(wafer_id=w.wafer_id, lot_id=w.lot_id, slot=w.slot, state=w.state,
                             location=w.location, step=w.step, reason=w.reason,
                             history=list(w.history))

    def _held(self, wafer_ids: list[str], action: str) -> list[_Wafer]:
        """The listed wafers, all held; else NotFound/Conflict naming them, nothing changed."""
        wafers = [self._find_wafer(i) for i in wafer_ids]
        not_held = [f"{w.wafer_id} is {w.state}" for w in wafers if w.state != "STOPPED"]
        if not_held:
            raise Conflict(f"{'; '.join(not_held)}: only a held (STOPPED) wafer can be "
                           f"{action}d; nothing was changed")
        if action == "release":
            aborted = [f"{w.wafer_id} (lot {w.lot_id})" for w in wafers
                       if self._lots[w.lot_id].state == "ABORTED"]
            if aborted:
                raise Conflict(f"{', '.join(aborted)}: the lot was aborted, nothing goes on; "
                               f"scrap instead. Nothing was changed")
        return wafers

    async def release_wafers(self, wafer_ids: list[str], reason: str,
                             who: str) -> list[WaferView]:
        with self._lock:
            for w in self._held(wafer_ids, "release"):
                done = {h.step for h in w.history if h.step}
                nxt = next((tool for tool, step in ROUTE if step not in done), None)
                note = f"released by {who}: {reason}"
                if nxt is None:
                    self._set_wafer(w, "PROCESSED", location="stocker", note=note)
                else:
                    self._set_wafer(w, "IN_PROCESS" if done else "NEEDS_PROCESSING",
                                    step=f"waiting for {nxt}", note=note)
                self._close_if_done(self._lots[w.lot_id])
            return [self.wafer(i) for i in wafer_ids]

    async def scrap_wafers(self, wafer_ids: list[str], reason: str,
                           who: str) -> list[WaferView]:
        with self._lock:
            for w in self._held(wafer_ids, "scrap"):
                self._set_wafer(w, "REJECTED", reason=f"scrapped by {who}: {reason}")
                self._close_if_done(self._lots[w.lot_id])
            return [self.wafer(i) for i in wafer_ids]

    def _close_if_done(self, lt: _Lot) -> None:
        if lt.state not in LOT_FINAL and all(
                w.state in WAFER_FINAL and w.state != "STOPPED" for w in lt.wafers):
            self._set_lot(lt, "PROCESS_COMPLETE")

    def _set_wafer(self, w: _Wafer, state: str, location: str | None = None, step: str = "",
                   reason: str | None = None, note: str = "") -> None:
        src = w.state
        w.state, w.step, w.reason = state, step, reason
        w.location = location or w.location
        w.history.append(WaferHistoryEntry(t=time.time(), state=state, location=w.location,
                                           step=step, note=note or (reason or "")))
        self._emit("wafer", lot_id=w.lot_id, wafer_id=w.wafer_id, step=step or None,
                   data={"src": src, "dst": state, "reason": reason})

    # --- test / demo controls -------------------------------------------------------
    def start_step(self, tool: str, lot_id: str, wafer_id: str, step: str) -> None:
        """A job step begins on ``tool`` (the lot goes PROCESSING, the wafer IN_PROCESS)."""
        with self._lock:
            t, lt = self._get_tool(tool), self._get_lot(lot_id)
            if t.step is not None or t.engineering or t.take_pending or not t.connected:
                raise Conflict(f"{tool} cannot start a step now")
            w = self._find_wafer(wafer_id)
            if lt.state in ("QUEUED", "SETTING_UP", "WAITING_FOR_START"):
                self._set_lot(lt, "PROCESSING")
            t.lot_id, t.wafer_id, t.step, t.started = lot_id, wafer_id, step, time.time()
            state = "IN_PROCESS" if w.state == "NEEDS_PROCESSING" else w.state
            self._set_wafer(w, state, location=tool, step=step)
            self._emit("step_start", tool=tool, lot_id=lot_id, wafer_id=wafer_id, step=step)

    def hold_wafer(self, wafer_id: str, reason: str) -> None:
        """Hold a wafer for disposition (STOPPED with ``reason``), as the engine does on an
        excursion; a step running on it ends. Its lot stays open."""
        with self._lock:
            w = self._find_wafer(wafer_id)
            if w.state not in ("NEEDS_PROCESSING", "IN_PROCESS"):
                raise Conflict(f"{wafer_id} is {w.state}: cannot be held")
            for t in self._tools.values():
                if t.wafer_id == wafer_id:
                    self._finish_step(t, "held")
            self._set_wafer(w, "STOPPED", step=w.step, reason=reason)

    def end_step(self, tool: str, outcome: str = "ok") -> None:
        with self._lock:
            self._finish_step(self._get_tool(tool), outcome)

    def _finish_step(self, t: _Tool, outcome: str) -> None:
        if t.step is None:
            return
        self._emit("step_end", tool=t.name, lot_id=t.lot_id, wafer_id=t.wafer_id, step=t.step,
                   data={"duration_s": time.time() - t.started, "outcome": outcome})
        t.lot_id = t.wafer_id = t.step = None
        if t.take_pending:
            t.take_pending, t.engineering = False, True
            self._emit("take", tool=t.name, data={"by": t.taken_by})

    def lose_comms(self, tool: str) -> None:
        with self._lock:
            t = self._get_tool(tool)
            t.connected = False
            self._emit("tool", tool=tool, data={"comms": "UNKNOWN"})
            self.raise_alarm(tool, "comms", f"{tool}: connection lost")

    def restore_comms(self, tool: str) -> None:
        with self._lock:
            self._get_tool(tool).connected = True
            self._emit("tool", tool=tool, data={"comms": "OK"})

    def raise_alarm(self, tool: str, kind: str, text: str, down: bool = True) -> AlarmView:
        with self._lock:
            alarm = AlarmView(id=len(self._alarms) + 1, tool=tool, kind=kind, text=text,
                              raised_at=time.time(), active=True)
            self._alarms.append(alarm)
            self._emit("alarm", tool=tool, data={"id": alarm.id, "kind": kind, "text": text,
                                                 "down": down})
            return alarm

    async def _autorun(self, step_s: float) -> None:
        """Demo mode: each lot wafer by wafer through the route, one lot at a time."""
        while True:
            await asyncio.sleep(step_s / 4)
            with self._lock:
                busy = [t for t in self._tools.values() if t.step is not None]
                for t in busy:
                    if time.time() - t.started >= step_s:
                        self._advance(t)
                if not busy:
                    self._start_next()

    def _advance(self, t: _Tool) -> None:
        w = self._find_wafer(t.wafer_id or "")
        route = [tool for tool, _ in ROUTE]
        self._finish_step(t, "ok")
        nxt = route.index(t.name) + 1
        if nxt == len(route):
            self._set_wafer(w, "PROCESSED", location="stocker")
            self._close_if_done(self._lots[w.lot_id])
        else:
            w.step = f"waiting for {route[nxt]}"

    def _start_next(self) -> None:
        for lt in self._lots.values():
            if lt.state not in ("QUEUED", "PROCESSING"):
                continue
            for w in lt.wafers:
                if w.state in WAFER_FINAL:
                    continue
                done = {h.step for h in w.history if h.step}
                for tool, step in ROUTE:
                    t = self._tools[tool]
                    if step in done:
                        continue
                    if t.connected and not t.engineering and not t.take_pending:
                        self.start_step(tool, lt.lot_id, w.wafer_id, step)
                    return

    # --- tools ----------------------------------------------------------------------
    def _get_tool(self, tool: str) -> _Tool:
        if tool not in self._tools:
            raise NotFound(f"no tool {tool!r} (tools: {', '.join(TOOLS)})")
        return self._tools[tool]

    def tool_status(self, tool: str) -> ToolView:
        with self._lock:
            t = self._get_tool(tool)
            return ToolView(tool=t.name, connected=t.connected,
                            state=("UNKNOWN" if not t.connected else
                                   "BUSY" if t.step else "IDLE"),
                            busy=t.step is not None, lot_id=t.lot_id, wafer_id=t.wafer_id,
                            step=t.step, engineering=t.engineering,
                            take_pending=t.take_pending, taken_by=t.taken_by,
                            alarms=list(t.alarms))

    def tool_busy(self, tool: str) -> bool:
        with self._lock:
            return self._get_tool(tool).step is not None

    async def take(self, tool: str, force: bool, who: str) -> ToolView:
        with self._lock:
            t = self._get_tool(tool)
            if t.engineering or t.take_pending:
                raise Conflict(f"{tool} is already taken by {t.taken_by}")
            t.taken_by = who
            if t.step is not None and force:
                lt = self._lots.get(t.lot_id or "")
                self._finish_step(t, "paused by forced take")
                if lt is not None and lt.state == "PROCESSING":
                    self._set_lot(lt, "PAUSED")
            if t.step is None:
                t.engineering = True
                self._emit("take", tool=tool, data={"by": who})
            else:
                t.take_pending = True
            return self.tool_status(tool)

    async def give(self, tool: str, who: str) -> ToolView:
        with self._lock:
            t = self._get_tool(tool)
            if not (t.engineering or t.take_pending):
                raise Conflict(f"{tool} is not taken")
            was_engineering = t.engineering
            t.engineering = t.take_pending = False
            t.taken_by = None
            if was_engineering:
                self._emit("give", tool=tool, data={"by": who})
            return self.tool_status(tool)

    async def manual(self, tool: str, command: str, args: Mapping[str, Any]) -> ManualReply:
        with self._lock:
            t = self._get_tool(tool)
            if not t.connected:
                raise ToolUnreachable(f"{tool}: no connection")
            if t.step is not None and changes_tool(command, args):
                raise ToolBusy(f"{tool} runs step {t.step} of lot {t.lot_id}")
            started = time.perf_counter()
            reply = self._reply(t, command, args)
            self._emit("command", tool=tool, data={
                "command": command, "outcome": "ok",
                "duration_s": time.perf_counter() - started})
            return ManualReply(tool=tool, command=command, reply=reply)

    def _reply(self, t: _Tool, command: str, args: Mapping[str, Any]) -> Any:
        if command in ("get", "set") and args["name"] not in t.settings:
            raise ToolRejected(f"{t.name}: undefined setting {args['name']!r} (fake)", -113)
        if command == "get":
            return t.settings[args["name"]]
        if command == "set":
            t.settings[args["name"]] = args["value"]
            return None
        if command == "idn":
            return f"FAKE,{t.name},0,0"
        if command == "status":
            return {"state": "BUSY" if t.step else "IDLE", "fake": True, **t.settings}
        if command in ("alarms", "errors"):
            return []
        if command == "raw":
            return "FAKE" if args["line"].strip().endswith("?") else None
        if command in ("clear_alarms", "ack_alarms"):
            t.alarms.clear()
        return None if COMMANDS[command].changes else "FAKE"

    # --- alarms, health -------------------------------------------------------------
    def alarms(self, active_only: bool) -> list[AlarmView]:
        with self._lock:
            return [a for a in self._alarms if a.active or not active_only]

    async def ack_alarm(self, alarm_id: int, who: str) -> AlarmView:
        with self._lock:
            for i, alarm in enumerate(self._alarms):
                if alarm.id == alarm_id:
                    if alarm.active:
                        alarm = alarm.model_copy(update={"active": False, "acked_by": who,
                                                         "acked_at": time.time()})
                        self._alarms[i] = alarm
                        self._emit("alarm_ack", tool=alarm.tool, data={"id": alarm_id,
                                                                       "by": who})
                    return alarm
            raise NotFound(f"no alarm {alarm_id}")

    def health(self) -> HealthView:
        with self._lock:
            tools = {t.name: t.connected for t in self._tools.values()}
            active = sum(1 for lt in self._lots.values() if lt.state not in LOT_FINAL)
            return HealthView(status="ok" if all(tools.values()) else "degraded",
                              journal=True, tools=tools, lots_active=active)
