"""SEMI E10 equipment state per tool, kept from the daemon's own knowledge.

The state is derived, in this order of precedence, from what the events told us:

1. UNSCHEDULED_DOWN while the connection is lost (``tool`` UNKNOWN) or an alarm
   on the tool is unacknowledged (an alarm whose ``data.down`` is false does not
   count: e.g. a queue-time hold raised against the tool that did not stop it; nor
   does one without ``data.id``, which could never be cleared by its ack);
2. ENGINEERING while taken by a technician (``take`` … ``give``);
3. PRODUCTIVE while a job step runs on it (``step_start`` … ``step_end``, counted
   per wafer: a cure batch is 25 starts and 25 ends);
4. STANDBY otherwise.

Time in each state is wall time measured by the daemon (``clock``), from the
moment it started tracking; it does not survive a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sequencer.faces.http.contract import E10View, LineEvent, ToolView

PRODUCTIVE = "PRODUCTIVE"
STANDBY = "STANDBY"
ENGINEERING = "ENGINEERING"
SCHEDULED_DOWN = "SCHEDULED_DOWN"
UNSCHEDULED_DOWN = "UNSCHEDULED_DOWN"
NON_SCHEDULED = "NON_SCHEDULED"
STATES = (PRODUCTIVE, STANDBY, ENGINEERING, SCHEDULED_DOWN, UNSCHEDULED_DOWN, NON_SCHEDULED)


@dataclass
class _Tool:
    state: str
    since: float
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATES, 0.0))
    comms_lost: bool = False
    alarms: set[int] = field(default_factory=set)
    taken: bool = False
    running: set[str] = field(default_factory=set)  # wafers with a step running here

    def derived(self) -> str:
        if self.comms_lost or self.alarms:
            return UNSCHEDULED_DOWN
        if self.taken:
            return ENGINEERING
        return PRODUCTIVE if self.running else STANDBY


@dataclass(frozen=True)
class E10Change:
    tool: str
    previous: str
    state: str
    t: float


class E10Tracker:
    """Feed it every line event (``observe``); ask it for a tool's state and times."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tools: dict[str, _Tool] = {}
        self._alarm_tool: dict[int, str] = {}

    def track(self, status: ToolView, active_alarms: Iterable[tuple[int, str]] = ()) -> None:
        """Start tracking a tool from its snapshot (on start, or after a restart)."""
        tool = _Tool(STANDBY, self._clock(), comms_lost=not status.connected,
                     taken=status.engineering)
        if status.busy:
            tool.running.add(status.wafer_id or "")
        for alarm_id, name in active_alarms:
            if name == status.tool:
                tool.alarms.add(alarm_id)
                self._alarm_tool[alarm_id] = name
        tool.state = tool.derived()
        self._tools[status.tool] = tool

    def tools(self) -> list[str]:
        return list(self._tools)

    def observe(self, event: LineEvent) -> E10Change | None:
        """Apply one event; returns the change of E10 state it caused, if any."""
        name = event.tool
        if event.kind == "alarm_ack":
            name = self._alarm_tool.pop(_int(event.data.get("id")), name)
        tool = self._tools.get(name or "")
        if tool is None:
            return None
        kind, data = event.kind, event.data
        if kind == "step_start":
            tool.running.add(event.wafer_id or "")
        elif kind == "step_end":
            if event.wafer_id is None:
                tool.running.clear()
            tool.running.discard(event.wafer_id or "")
        elif kind == "tool":
            tool.comms_lost = event.new_state() == "UNKNOWN"
        elif kind == "take":
            tool.taken = True
        elif kind == "give":
            tool.taken = False
        elif kind == "alarm" and "id" in data and data.get("down", True) is not False:
            alarm_id = _int(data.get("id"))
            tool.alarms.add(alarm_id)
            self._alarm_tool[alarm_id] = name or ""
        elif kind == "alarm_ack":
            tool.alarms.discard(_int(data.get("id")))
        return self._settle(name or "", tool)

    def _settle(self, name: str, tool: _Tool) -> E10Change | None:
        state = tool.derived()
        if state == tool.state:
            return None
        now = self._clock()
        tool.seconds[tool.state] += max(0.0, now - tool.since)
        change = E10Change(name, tool.state, state, now)
        tool.state, tool.since = state, now
        return change

    def state(self, name: str) -> str:
        return self._tools[name].state

    def view(self, name: str) -> E10View:
        """Current state, since when, and seconds in every state up to now."""
        tool = self._tools[name]
        seconds = dict(tool.seconds)
        seconds[tool.state] += max(0.0, self._clock() - tool.since)
        return E10View(state=tool.state, since=tool.since, seconds=seconds)


def _int(value: object) -> int:
    """An event's alarm id as an int; -1 for anything else (a bad event never raises)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.isdigit() else -1
