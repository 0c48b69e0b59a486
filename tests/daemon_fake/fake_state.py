"""The fake line's state and the hands that move it: what ``FakeLine`` serves, and how
tests drive it.

``FakeState`` holds the lots, wafers, tools and alarms (one re-entrant lock),
the helpers that change them and emit the matching events (``_set_lot``,
``_set_wafer``, ``_finish_step``, ``_settle``), and the controls a test calls
from any thread: ``start_step``/``end_step`` (a job step on a tool), ``tick``
(start every step the engine would start now), ``hold_wafer`` (held for
disposition, as the engine does on an excursion), ``lose_comms``/
``restore_comms``, ``raise_alarm``.

The rules the engine keeps (``sequencer/runner/serving.py``), kept here:
a pause or an abort asked while a step of the lot runs leaves it PAUSING or
ABORTING until the step ends; no step starts for a paused or aborting lot, nor on
a taken tool; held wafers (STOPPED, awaiting disposition) keep their lot open: a
lot is PROCESS_COMPLETE only once every wafer is final and none is held.
``tests/hil/test_daemon_contract.py`` runs the same API checks against this and
the engine.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sequencer.faces.http.contract import (
    AlarmView,
    Conflict,
    LineEvent,
    NotFound,
    WaferHistoryEntry,
)
from sequencer.states.job import FINAL as LOT_FINAL
from sequencer.states.substrate import FINAL as WAFER_FINAL

TOOLS = ("exposure", "oven", "etcher")
ROUTE = (("exposure", "expose"), ("oven", "cure"), ("etcher", "etch"))
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



class FakeState:
    """The fake line's memory; every public method is thread-safe (one lock)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tools = {t: _Tool(t, settings=dict(SETTINGS[t])) for t in TOOLS}
        self._lots: dict[str, _Lot] = {}
        self._alarms: list[AlarmView] = []
        self._queue: asyncio.Queue[LineEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False

    # --- state changes, each with its event -------------------------------------------
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

    def _get_lot(self, lot_id: str) -> _Lot:
        if lot_id not in self._lots:
            raise NotFound(f"no lot {lot_id!r}")
        return self._lots[lot_id]

    def _set_lot(self, lt: _Lot, state: str) -> None:
        src, lt.state = lt.state, state
        self._emit("job", lot_id=lt.lot_id, data={"src": src, "dst": state})

    def _find_wafer(self, wafer_id: str) -> _Wafer:
        found = [w for lt in self._lots.values() for w in lt.wafers if w.wafer_id == wafer_id]
        if not found:
            raise NotFound(f"no wafer {wafer_id!r}")
        return found[-1]  # the latest lot that carried this id

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

    def _get_tool(self, tool: str) -> _Tool:
        if tool not in self._tools:
            raise NotFound(f"no tool {tool!r} (tools: {', '.join(TOOLS)})")
        return self._tools[tool]

    def _finish_step(self, t: _Tool, outcome: str) -> None:
        if t.step is None:
            return
        self._emit("step_end", tool=t.name, lot_id=t.lot_id, wafer_id=t.wafer_id, step=t.step,
                   data={"duration_s": time.time() - t.started, "outcome": outcome})
        lot_id = t.lot_id
        t.lot_id = t.wafer_id = t.step = None
        if t.take_pending:
            t.take_pending, t.engineering = False, True
            self._emit("take", tool=t.name, data={"by": t.taken_by})
        if lot_id in self._lots:
            self._settle(self._lots[lot_id])

    def _settle(self, lt: _Lot) -> None:
        """Once no step of the lot runs: PAUSING → PAUSED, ABORTING → its waiting wafers
        out (never started: SKIPPED, between steps: ABORTED; held ones stay) → ABORTED."""
        if any(t.lot_id == lt.lot_id for t in self._tools.values()):
            return
        if lt.state == "PAUSING":
            self._set_lot(lt, "PAUSED")
        elif lt.state == "ABORTING":
            for w in lt.wafers:
                if w.state == "NEEDS_PROCESSING":
                    self._set_wafer(w, "SKIPPED", reason="lot aborted")
                elif w.state not in WAFER_FINAL:
                    self._set_wafer(w, "ABORTED", reason="lot aborted")
            self._set_lot(lt, "ABORTED")

    # --- test / demo controls -------------------------------------------------------
    def start_step(self, tool: str, lot_id: str, wafer_id: str, step: str) -> None:
        """A job step begins on ``tool`` (the lot goes PROCESSING, the wafer IN_PROCESS)."""
        with self._lock:
            t, lt = self._get_tool(tool), self._get_lot(lot_id)
            if t.step is not None or t.engineering or t.take_pending or not t.connected:
                raise Conflict(f"{tool} cannot start a step now")
            if lt.state not in ("QUEUED", "SETTING_UP", "WAITING_FOR_START", "PROCESSING"):
                raise Conflict(f"lot {lot_id} is {lt.state}: no step starts")
            w = self._find_wafer(wafer_id)
            if w.state in WAFER_FINAL:
                raise Conflict(f"{wafer_id} is {w.state}: no step starts")
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

    def tick(self) -> list[tuple[str, str]]:
        """Start every step the engine would start now: on each free tool (connected, not
        taken), the first wafer in lot order whose next route step is there. Returns the
        (tool, wafer) started."""
        started: list[tuple[str, str]] = []
        with self._lock:
            for tool, step in ROUTE:
                t = self._tools[tool]
                if t.step or t.engineering or t.take_pending or not t.connected:
                    continue
                for lt in self._lots.values():
                    w = next((w for w in lt.wafers if self._next_step(w) == step), None)
                    if w is not None and lt.state in ("QUEUED", "PROCESSING"):
                        self.start_step(tool, lt.lot_id, w.wafer_id, step)
                        started.append((tool, w.wafer_id))
                        break
        return started

    def _next_step(self, w: _Wafer) -> str | None:
        if w.state in WAFER_FINAL or any(t.wafer_id == w.wafer_id for t in self._tools.values()):
            return None
        done = {h.step for h in w.history if h.step}
        return next((step for _, step in ROUTE if step not in done), None)
