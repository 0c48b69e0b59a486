"""The live progress display of a run: lots, tools, readings, wafer maps, alarms.

Fed with the scheduler's events (``sequencer.runner.alarms.Event``) and nothing else:
``step_start``/``step_end`` (what each tool works on), ``reading`` (a step's live readings
and its expected duration, ``sequencer/runner/steps/readings.py``), ``wafer`` and ``job``
(E90 / E40 states), ``alarm``/``alarm_ack`` and ``tool`` (comms, held, released), ``batch``,
``take``/``give``. Tools are the ones the events name (seeded from the line's tool list when
one is given), in the order first seen: no tool name is assumed.

On a terminal it redraws in place (rich ``Live``, ``sequencer/faces/progress_view.py``
draws it); elsewhere (CI, a pipe, a log file; ``--plain``) it prints one plain line per
finished step, batch and alarm, so the output stays readable.

Time is tool time: the events' own clock; between events a live display advances it with
``now`` (the sequencer's clock, ``time.time() × time_scale``), so bars and time left move.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.live import Live

from sequencer.faces.progress_view import render
from sequencer.runner.alarms import Event
from sequencer.states.substrate import FINAL

DONE_MARK = {"expose": "exposed", "cure": "cured", "etch": "etch"}
PACE_OF = 5  # a lot's ETA: the pace of its last five finished wafers


@dataclass
class ToolLive:
    """What one tool is doing, as the events tell it."""

    name: str
    step: str | None = None
    wafers: list[str] = field(default_factory=list)
    started_t: float | None = None  # the step_start's time
    progress_t0: float | None = None  # the time a reading's elapsed_s counts from
    expected_s: float | None = None  # the step's own estimate (a reading's expected_s)
    readings: dict[str, Any] = field(default_factory=dict)
    comms: str = "OK"
    held: str | None = None  # the hold's reason
    hold_alarm: Any = None  # the hold's alarm id: it leaves the pinned list at the release
    taken_by: str | None = None
    durations: dict[str, list[float]] = field(default_factory=dict)  # finished steps

    def estimate_s(self) -> float | None:
        """The step's expected duration: the step's own figure, else the mean of this
        tool's finished steps of the same kind, else None (unknown yet)."""
        if self.expected_s:
            return self.expected_s
        done = self.durations.get(self.step or "", [])
        return sum(done) / len(done) if done else None

    def elapsed_s(self, now: float) -> float:
        t0 = self.progress_t0 if self.progress_t0 is not None else self.started_t
        return max(0.0, now - t0) if t0 is not None else 0.0


@dataclass
class LotLive:
    lot_id: str
    slots: dict[int, str] = field(default_factory=dict)  # slot → wafer id
    job: str = "QUEUED"
    started_t: float | None = None
    finished_t: list[float] = field(default_factory=list)  # when each wafer became final

    @property
    def total(self) -> int:
        return len(self.slots)


@dataclass
class AlarmLive:
    id: Any
    t: float
    tool: str
    kind: str
    text: str


@dataclass
class ProgressState:
    """What the display shows, kept from events alone."""

    wafers: dict[str, str] = field(default_factory=dict)  # wafer id → display state
    wafer_lot: dict[str, str] = field(default_factory=dict)
    tools: dict[str, ToolLive] = field(default_factory=dict)
    lots: dict[str, LotLive] = field(default_factory=dict)
    alarms: dict[Any, AlarmLive] = field(default_factory=dict)  # active, by journal id
    t0: float | None = None
    t: float = 0.0

    def tool(self, name: str) -> ToolLive:
        return self.tools.setdefault(name, ToolLive(name))

    def seed_tools(self, names: Iterable[str]) -> None:
        for name in names:
            self.tool(name)

    def seed_lot(self, lot_id: str, wafers: Iterable[tuple[int, str]]) -> None:
        lot = self.lots.setdefault(lot_id, LotLive(lot_id))
        for slot, wid in wafers:
            lot.slots[int(slot)] = wid
            self.wafer_lot[wid] = lot_id
            self.wafers.setdefault(wid, "waiting")

    def done(self, lot: LotLive) -> int:
        return sum(1 for wid in lot.slots.values() if self.wafers.get(wid) in FINAL)

    def eta_s(self, lot: LotLive, now: float) -> float | None:
        """Tool seconds left for the lot at the pace of its last finished wafers (up to
        :data:`PACE_OF`), or None before two are done: a batch line finishes nothing for
        hours and then a wafer every few minutes, so the time to the first says little."""
        done = self.done(lot)
        if lot.total and done >= lot.total:
            return 0.0
        recent = lot.finished_t[-PACE_OF:]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return None
        pace = (recent[-1] - recent[0]) / (len(recent) - 1)
        return max(0.0, recent[-1] + pace * (lot.total - done) - now)

    def feed(self, ev: Event) -> str | None:
        """Update from one event; return a plain line worth printing, if any."""
        if self.t0 is None:
            self.t0 = ev.t
        self.t = max(self.t, ev.t)
        handler = _HANDLERS.get(ev.kind)
        line = handler(self, ev) if handler else None
        return None if line is None else f"[{(ev.t - self.t0) / 60:7.1f} min] {line}"

    # ---- one method per event kind ----------------------------------------------
    def _step_start(self, ev: Event) -> str | None:
        if not (ev.wafer_id and ev.step):
            return None
        self.wafers[ev.wafer_id] = ev.step
        lot = self.lots.get(ev.lot_id or self.wafer_lot.get(ev.wafer_id, ""))
        if lot is not None and lot.started_t is None:
            lot.started_t = ev.t
        tool = self.tool(ev.tool or ev.step)
        if tool.step != ev.step or not tool.wafers:  # a new step (a batch: one event each)
            tool.step, tool.wafers, tool.started_t = ev.step, [], ev.t
            tool.progress_t0, tool.expected_s, tool.readings = None, None, {}
        if ev.wafer_id not in tool.wafers:
            tool.wafers.append(ev.wafer_id)
        return None

    def _step_end(self, ev: Event) -> str | None:
        if not (ev.wafer_id and ev.step):
            return None
        if self.wafers.get(ev.wafer_id) not in FINAL:
            self.wafers[ev.wafer_id] = DONE_MARK.get(ev.step, ev.step)
        tool = self.tool(ev.tool or ev.step)
        if ev.wafer_id in tool.wafers:
            tool.wafers.remove(ev.wafer_id)
        if not tool.wafers and tool.step is not None:
            if ev.data.get("ok") and tool.started_t is not None:
                tool.durations.setdefault(tool.step, []).append(ev.t - tool.started_t)
            tool.step, tool.started_t, tool.progress_t0, tool.expected_s = None, None, None, None
            tool.readings = {}  # an idle tool's last readings would read as live ones
        if ev.step == "cure":  # the batch event says it for all of them
            return None
        ok = "ok" if ev.data.get("ok") else "FAILED"
        return f"{tool.name:8s} {ev.step:6s} {ev.wafer_id} {ok}"

    def _reading(self, ev: Event) -> str | None:
        tool = self.tool(ev.tool or "?")
        data = dict(ev.data)
        elapsed, expected = data.pop("elapsed_s", None), data.pop("expected_s", None)
        if elapsed is not None:
            tool.progress_t0 = ev.t - float(elapsed)
        if expected is not None:
            tool.expected_s = float(expected)
        data.pop("wafers", None)
        tool.readings.update(data)
        return None

    def _wafer(self, ev: Event) -> str | None:
        if not ev.wafer_id:
            return None
        dst = str(ev.data.get("dst", ""))
        if dst in FINAL:
            lot = self.lots.get(ev.lot_id or self.wafer_lot.get(ev.wafer_id, ""))
            if lot is not None and self.wafers.get(ev.wafer_id) not in FINAL:
                lot.finished_t.append(ev.t)
            self.wafers[ev.wafer_id] = dst
            reason = ev.data.get("reason") or ""
            return f"wafer    {ev.wafer_id} {dst}{': ' + reason if reason else ''}"
        self.wafers.setdefault(ev.wafer_id, "waiting")
        return None

    def _batch(self, ev: Event) -> str | None:
        wafers, cured = ev.data.get("wafers", []), ev.data.get("cured", [])
        return (f"{ev.tool or 'oven':8s} batch {ev.data.get('batch_no')}: "
                f"{len(cured)}/{len(wafers)} wafers cured")

    def _job(self, ev: Event) -> str | None:
        if not ev.lot_id:
            return None
        self.lots.setdefault(ev.lot_id, LotLive(ev.lot_id)).job = str(ev.data.get("dst"))
        return f"lot      {ev.lot_id} {ev.data.get('dst')}"

    def _alarm(self, ev: Event) -> str | None:
        d = ev.data
        key = d.get("id", len(self.alarms) + 1)
        self.alarms[key] = AlarmLive(key, ev.t, ev.tool or "", str(d.get("kind")),
                                     str(d.get("text")))
        return f"ALARM    #{d.get('id')} {ev.tool}: {d.get('kind')}: {d.get('text')}"

    def _alarm_ack(self, ev: Event) -> str | None:
        self.alarms.pop(ev.data.get("id"), None)
        return f"ack      #{ev.data.get('id')} by {ev.data.get('by')}"

    def _tool(self, ev: Event) -> str | None:
        if not ev.tool:
            return None
        tool = self.tool(ev.tool)
        if "comms" in ev.data:
            tool.comms = str(ev.data["comms"])
            return f"{ev.tool:8s} comms {tool.comms}"
        if ev.data.get("held"):
            tool.held = str(ev.data.get("reason") or "held")
            tool.hold_alarm = ev.data.get("alarm_id")
            return f"{ev.tool:8s} held: {tool.held}"
        if ev.data.get("held") is False:  # a person acknowledged (maybe from another shell)
            self.alarms.pop(ev.data.get("alarm_id", tool.hold_alarm), None)
            tool.held, tool.hold_alarm = None, None
            return f"{ev.tool:8s} released (acknowledged by {ev.data.get('acked_by')})"
        return None

    def _take(self, ev: Event) -> str | None:
        if ev.tool:
            self.tool(ev.tool).taken_by = str(ev.data.get("by") or "?")
        return f"{ev.tool:8s} taken for engineering by {ev.data.get('by')}"

    def _give(self, ev: Event) -> str | None:
        if ev.tool:
            self.tool(ev.tool).taken_by = None
        return f"{ev.tool:8s} given back by {ev.data.get('by')}"


_HANDLERS: dict[str, Callable[[ProgressState, Event], str | None]] = {
    "step_start": ProgressState._step_start, "step_end": ProgressState._step_end,
    "reading": ProgressState._reading, "wafer": ProgressState._wafer,
    "batch": ProgressState._batch, "job": ProgressState._job, "alarm": ProgressState._alarm,
    "alarm_ack": ProgressState._alarm_ack, "tool": ProgressState._tool,
    "take": ProgressState._take, "give": ProgressState._give,
}


class ProgressDisplay:
    """Use as a context manager; pass :meth:`on_event` to the scheduler.

    ``now``: the tool clock a live display advances between events (default: the time of
    the last event). Events arrive on the run's event loop and the redraw runs on rich's
    refresh thread, so both go through one lock.
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None,
                 now: Callable[[], float] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.state = ProgressState()
        self.now = now
        self._lock = threading.Lock()
        self._console = Console(file=self.stream)
        self._live: Live | None = None

    def seed(self, wafer_ids: Iterable[str]) -> None:
        for wid in wafer_ids:
            self.state.wafers.setdefault(wid, "waiting")

    def seed_lots(self, lots: Iterable[Any]) -> None:
        """Lots (``sequencer.process.recipes.Lot``: ``lot_id``, ``wafers`` with ``slot``)."""
        for lot in lots:
            self.state.seed_lot(lot.lot_id, ((w.slot, w.wafer_id) for w in lot.wafers))

    def seed_tools(self, names: Iterable[str]) -> None:
        self.state.seed_tools(names)

    def renderable(self) -> RenderableType:
        with self._lock:
            now = max(self.state.t, self.now()) if self.now is not None else self.state.t
            return render(self.state, now)

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._live = Live(get_renderable=self.renderable, console=self._console,
                              refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.refresh()
            self._live.__exit__(None, None, None)

    def on_event(self, ev: Event) -> None:
        with self._lock:
            line = self.state.feed(ev)
        if not self._live and line:  # live: rich's refresh thread redraws (4 per second)
            print(line, file=self.stream, flush=True)
