"""What the screen keeps of the line's life beside the contract's views: two daemon faces.

* ``StepClock`` hears every line event (the daemon's pump): when the step now running
  on each tool began, its step's time left, and the last ``reading`` event of each
  tool's latest step (the etch's endpoint is in it, not in the status snapshot the
  engine keeps).
* ``ReadingsTicker``: a tool's gauges (PV, O2, pressure, RF …) change with no line
  event. Every ``TICK_S`` it reads each tool's last status from memory
  (``LineControl.tool_readings``: what the engine's own polls saw; nothing is asked of
  a tool) and, for the tools whose readings changed, publishes a ``readings`` event on
  the event stream. The pages listen for it; the API's default kinds leave it out, so
  no other client sees it unless it asks.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import structlog

from sequencer.faces.http.contract import LineControl, LineError, LineEvent
from sequencer.faces.http.core import DaemonCore

log = structlog.get_logger("viaform.screen")
TICK_S = 5.0
READINGS = "readings"


@dataclass
class StepClock:
    """When the step now running on each tool began (unix time), from the line's events
    (a cure batch's 25 starts count from the first)."""

    started: dict[str, float] = field(default_factory=dict)
    running: dict[str, set[str]] = field(default_factory=dict)
    #: tool → (unix time of the step's last reading, tool seconds it said were left)
    left: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: tool → the last ``reading`` event of its latest step, kept after the step ends
    #: (the card shows the last etch's endpoint) until the tool's next step starts
    last_reading: dict[str, LineEvent] = field(default_factory=dict)
    scale: float = 1.0

    async def start(self, line: LineControl) -> None:
        self.scale = line.time_scale()

    def time_left(self, tool: str, now: float) -> float | None:
        """Wall seconds the running step on ``tool`` still needs, by its own last estimate
        (a ``reading`` event's expected − elapsed), counted down since; None without one."""
        if tool not in self.started or tool not in self.left:
            return None
        at, tool_s = self.left[tool]
        return max(0.0, tool_s / self.scale - (now - at))

    async def stop(self) -> None:
        return None

    def observe(self, event: LineEvent) -> None:
        if event.kind == "reading" and event.tool is not None:
            expected, elapsed = event.data.get("expected_s"), event.data.get("elapsed_s")
            if isinstance(expected, int | float) and isinstance(elapsed, int | float):
                self.left[event.tool] = (event.t, max(0.0, float(expected) - float(elapsed)))
            self.last_reading[event.tool] = event
            return
        if event.tool is None or event.kind not in ("step_start", "step_end"):
            return
        wafers = self.running.setdefault(event.tool, set())
        if event.kind == "step_start":
            if not wafers:
                self.started[event.tool] = event.t
                self.last_reading.pop(event.tool, None)
            wafers.add(event.wafer_id or "")
        else:
            wafers.discard(event.wafer_id or "")
            if not wafers:
                self.started.pop(event.tool, None)
                self.left.pop(event.tool, None)


class ReadingsTicker:
    def __init__(self, core: DaemonCore) -> None:
        self.core = core
        self.last: dict[str, dict[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self, line: LineControl) -> None:
        self.tick()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def observe(self, event: LineEvent) -> None:
        return None

    def readings(self, tool: str) -> dict[str, float]:
        """The tool's readings now (from memory; empty if the line has none for it)."""
        try:
            return self.core.line.tool_readings(tool)
        except LineError:
            return {}

    def tick(self) -> list[str]:
        """Read every tool's readings; publish those that changed. The tools published."""
        changed = []
        for tool in self.core.line.tools():
            now = self.readings(tool)
            if now != self.last.get(tool):
                self.last[tool] = now
                changed.append(tool)
                self.core.hub.publish(LineEvent(kind=READINGS, t=self.core.clock(),
                                                tool=tool, data=dict(now)))
        return changed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick()
            except Exception:  # the screen never takes the daemon down
                log.exception("readings tick failed")
