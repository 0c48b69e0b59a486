"""A step's live readings for the displays (``reading`` events) and the etch's O trace.

A step publishes what it reads while it waits, with its own estimate of the time still
to run: ``Event("reading", t, tool=…, step=…, data={"elapsed_s", "expected_s", …values})``,
``expected_s`` counted from the same origin as ``elapsed_s``. The terminal display and the
daemon's event stream (the operator's screen) show them; nothing in the runner reads them.

At most one event every :data:`MIN_WALL_S` wall seconds per step (a display redraws a few
times a second; at a high time scale a tool is polled every ~10 ms, and the event stream
must not carry a hundred readings a second); but the first always, and one whenever the
step's ``mark`` changes (the etcher's state or endpoint, the oven's state, segment or
phase), so a fast step's phases are never skipped.

The PE-200 keeps the CO 483.5 nm trace itself (``OES:TRACe?``) but no trace of O 777.4 nm:
:class:`EtchWatch` reads ``OES:O?`` with the other readings (``readings()``: pressure, RF,
flows, both OES lines, one joined query line) every :data:`OES_STEP_S` tool seconds, the
step of the tool's own CO trace, and keeps ``[elapsed_s, O counts]`` for the journal.
"""

from __future__ import annotations

import time
from typing import Any

from sequencer.runner.alarms import Event
from sequencer.runner.protocols import EtcherProto, state_name
from sequencer.runner.steps import StepContext, ToolHandle
from sequencer.states.substrate import Substrate

MIN_WALL_S = 0.25
OES_STEP_S = 2.0  # the PE-200's own OES:TRACe? step (manual, Readings)
_RF_ON = frozenset({"ETCHING", "OVERETCH"})


class LiveReadings:
    """The ``reading`` events of one step on one tool."""

    def __init__(self, ctx: StepContext, tool: str, step: str,
                 wafers: list[Substrate]) -> None:
        self.ctx, self.tool, self.step = ctx, tool, step
        self.lot_id = wafers[0].lot_id if wafers else None
        self.wafer_ids = [w.wafer_id for w in wafers]
        self._last_wall: float | None = None
        self._last_mark: Any = None

    def due(self, mark: Any = None) -> bool:
        """Whether an event would go out now (a caller may skip building its values)."""
        return (mark != self._last_mark or self._last_wall is None
                or time.monotonic() - self._last_wall >= MIN_WALL_S)

    def publish(self, elapsed_s: float, expected_s: float | None, values: dict[str, Any],
                *, mark: Any = None) -> None:
        if not self.due(mark):
            return
        self._last_wall, self._last_mark = time.monotonic(), mark
        one = self.wafer_ids[0] if len(self.wafer_ids) == 1 else None
        self.ctx.emit(Event("reading", self.ctx.clock.now(), lot_id=self.lot_id,
                            wafer_id=one, tool=self.tool, step=self.step,
                            data={"elapsed_s": round(elapsed_s, 1),
                                  "expected_s": None if expected_s is None
                                  else round(expected_s, 1),
                                  "wafers": self.wafer_ids, **values}))


class EtchWatch:
    """The etch wait's poll (``ETCH:STATus?`` and the readings on one line; kept every
    :data:`OES_STEP_S` and at each change of state), its O 777.4 nm trace and its
    ``reading`` events. ``poll`` runs on the tool's worker thread; ``observe`` on the
    loop, after each poll."""

    def __init__(self, ctx: StepContext, h: ToolHandle[EtcherProto], w: Substrate, *,
                 stabilize_s: float, main_s: float, overetch_pct: float, vent_s: float,
                 endpoint: bool) -> None:
        self.ctx, self.h = ctx, h
        self.live = LiveReadings(ctx, h.name, "etch", [w])
        self.stabilize_s, self.main_s, self.vent_s = stabilize_s, main_s, vent_s
        self.overetch, self.endpoint = overetch_pct / 100.0, endpoint
        self.o_trace: list[list[float]] = []  # [elapsed_s from RF on, O counts]
        self.readings: Any = None
        self._next_read = 0.0
        self._state: str | None = None
        self._t0 = ctx.clock.now()

    def poll(self) -> Any:
        """The status line (what the wait decides on); the readings when due, and at each
        change of state (so the first reading of ETCHING is the RF's)."""
        line, readings = self.h.driver.etch_watch()  # one line: a poll is one round trip
        now, state = self.ctx.clock.now(), state_name(line.state)
        if now >= self._next_read or state != self._state:
            self._state = state
            self.readings = readings
            self._next_read = now + OES_STEP_S
            if state in _RF_ON and self.readings.rf_forward_w > 0:
                self.o_trace.append([float(line.elapsed_s), float(self.readings.oes_o)])
        return line

    def observe(self, line: Any) -> None:
        state = state_name(line.state)
        if not self.live.due((state, line.endpoint_s)):
            return
        rf_on = state in _RF_ON or bool(line.elapsed_s)
        main = self.main_s
        if self.endpoint and line.endpoint_s is not None:
            main = float(line.endpoint_s)  # the endpoint ends the main etch
        rest = main * (1 + self.overetch) + self.vent_s
        elapsed = float(line.elapsed_s) if rf_on else self.ctx.clock.now() - self._t0
        expected = rest if rf_on else self.stabilize_s + rest
        values: dict[str, Any] = {"state": state, "endpoint_s": line.endpoint_s}
        r = self.readings
        if r is not None:
            values.update(rf_forward_w=r.rf_forward_w, rf_reflected_w=r.rf_reflected_w,
                          pressure_mtorr=r.pressure_mtorr, oes_co=r.oes_co, oes_o=r.oes_o)
        self.live.publish(elapsed, expected, values, mark=(values["state"], line.endpoint_s))
