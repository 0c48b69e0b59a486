"""An in-memory ``LineControl``: no tools, no journal, no scheduler. A fake, honestly.

For the daemon's fast API tests (schemathesis, the front door, disposition): it
keeps the rules the real engine keeps (E40/E90 state names, atomic submit,
manual commands refused while a step runs, take effective when the step ends, a
forced take pausing the running step's lot, pause and abort waiting for the
running step) but nothing moves unless told: tests drive it with the controls of
``fake_state.FakeState`` (``start_step``/``end_step``/``tick``/``hold_wafer``/
``lose_comms``/``raise_alarm``). Manual commands answer from a small settings
table, never from a tool. ``tests/hil/test_daemon_contract.py`` holds it and the
engine to the same API checks.

An engineer's release sends a held wafer on to the step after the one it was
held in (or to PROCESSED if none is left); scrap ends it REJECTED. A held wafer
keeps its lot open (fake_state.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from sequencer.faces.http.commands import COMMANDS, changes_tool
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
    ToolRejected,
    ToolUnreachable,
    ToolView,
    WaferHistoryEntry,
    WaferResults,
    WaferSummary,
    WaferView,
)
from sequencer.process.recipe_check import default_recipes_dir
from sequencer.process.recipes import Lot

from .fake_state import LOT_FINAL, ROUTE, TOOLS, FakeState, _Lot, _Tool, _Wafer


class FakeLine(FakeState):
    """In-memory ``LineControl``; every public method is thread-safe (one lock)."""

    def __init__(self) -> None:
        super().__init__()
        self._constants = {"q_develop_cure_s": 24 * 3600.0, "q_cure_etch_s": 72 * 3600.0,
                           "max_batch": 25.0, **{f"poll_s.{t}": 0.5 for t in TOOLS}}

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self.stopped = True

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

    def _lot_view(self, lt: _Lot) -> LotView:
        return LotView(lot_id=lt.lot_id, flow=lt.flow, state=lt.state,
                       submitted_at=lt.submitted_at,
                       wafers=[WaferSummary(wafer_id=w.wafer_id, slot=w.slot, state=w.state,
                                            location=w.location, step=w.step, reason=w.reason)
                               for w in lt.wafers])

    async def pause(self, lot_id: str) -> LotView:
        with self._lock:
            lt = self._get_lot(lot_id)
            if lt.state != "PROCESSING":
                raise Conflict(f"lot {lot_id} is {lt.state}: only a PROCESSING lot pauses")
            self._set_lot(lt, "PAUSING")
            self._settle(lt)  # PAUSED now if no step of the lot runs, else when it ends
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
            if lt.state in LOT_FINAL or lt.state == "ABORTING":
                raise Conflict(f"lot {lot_id} is already {lt.state}")
            self._set_lot(lt, "ABORTING")
            self._settle(lt)  # the running step finishes first, as on the engine
            return self._lot_view(lt)

    # --- wafers ---------------------------------------------------------------------
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

    # --- tools ----------------------------------------------------------------------
    def tool_status(self, tool: str) -> ToolView:
        with self._lock:
            t = self._get_tool(tool)
            return ToolView(tool=t.name, kind=t.name, connected=t.connected,
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
            if t.step is not None and force:  # the lot pauses now; the step runs on
                lt = self._lots.get(t.lot_id or "")
                if lt is not None and lt.state == "PROCESSING":
                    self._set_lot(lt, "PAUSING")
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

    async def manual(self, tool: str, command: str, args: Mapping[str, Any],
                     who: str = "?") -> ManualReply:
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

    def recipes_dir(self) -> Path:
        return default_recipes_dir()

    def time_scale(self) -> float:
        return 1.0

    def plan(self) -> PlanView:
        return PlanView()  # the fake has no planner: the empty plan, as before a first one

    def health(self) -> HealthView:
        with self._lock:
            tools = {t.name: t.connected for t in self._tools.values()}
            active = sum(1 for lt in self._lots.values() if lt.state not in LOT_FINAL)
            return HealthView(status="ok" if all(tools.values()) else "degraded",
                              journal=True, tools=tools, lots_active=active)

    # --- the GEM face's constants and gauges ------------------------------------------
    def constants(self) -> dict[str, float]:
        with self._lock:
            return dict(self._constants)

    async def set_constant(self, name: str, value: float, who: str) -> None:
        with self._lock:
            if name not in self._constants:
                raise NotFound(f"no constant {name!r}")
            self._constants[name] = float(value)

    def wafer_results(self, wafer_id: str) -> WaferResults | None:
        with self._lock:
            for lt in self._lots.values():
                for w in lt.wafers:
                    if w.wafer_id == wafer_id:
                        return WaferResults(wafer_id=w.wafer_id, slot=w.slot, state=w.state,
                                            location=w.location, step=w.step, reason=w.reason)
            return None

    def tool_readings(self, tool: str) -> dict[str, float]:
        with self._lock:
            if tool not in self._tools:
                raise NotFound(f"no tool {tool!r}")
            return {}
