"""The contract between the daemon's HTTP layer and the line it controls.

``LineControl`` is what the sequencer engine implements (``engine_line.EngineLine``;
the tests' ``tests/daemon_fake`` is an in-memory stand-in held to the same API
checks by ``tests/hil/test_daemon_contract.py``). The views it
returns are pydantic models so that the HTTP layer serves them as they are and
the OpenAPI document describes exactly what the engine hands over.

Rules an implementation must keep:

* Query methods (plain ``def``) answer from memory and never block: they run on
  the event loop. Anything that talks to a tool is ``async``.
* A refused request raises one of the ``LineError`` subclasses and changes
  nothing (no half-applied lot, no half-taken tool).
* ``manual`` must itself refuse a command that changes a tool while a job step
  runs on it (``ToolBusy``): the daemon's own ``tool_busy`` check before the call
  only gives the clearer message, it cannot close the race.
* ``events()`` is consumed by exactly one reader (the daemon's pump), which
  fans the events out to the E10 tracker, the metrics and the SSE subscribers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from sequencer.process.recipes import Lot

JSONScalar = str | int | float | bool | None


# --- errors the line raises (the HTTP layer maps them to status codes) ------------------
class LineError(Exception):
    """A request the line refuses; nothing was changed."""

    status = 400


class NotFound(LineError):
    status = 404


class Conflict(LineError):
    """The request does not fit the current state (lot already final, tool not taken …)."""

    status = 409


class ToolBusy(Conflict):
    """A command that changes the tool while a job step runs on it."""


class ToolRejected(LineError):
    """The tool itself refused the command (its error queue / Modbus exception)."""

    status = 409

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ToolUnreachable(LineError):
    """No connection to the tool (the daemon carries on; the work on that tool pauses)."""

    status = 503


# --- views ------------------------------------------------------------------------------
class WaferSummary(BaseModel):
    wafer_id: str
    slot: int
    state: str = Field(description="SEMI E90 substrate state")
    location: str
    step: str = ""
    reason: str | None = Field(None, description="why it stopped (held for disposition)")


class WaferResults(WaferSummary):
    """A live wafer's summary and measurements, from memory (``LineControl.wafer_results``)."""

    data: dict[str, JSONScalar] = Field(default_factory=dict)


class LotView(BaseModel):
    lot_id: str
    flow: str
    state: str = Field(description="SEMI E40 process-job state")
    submitted_at: float = Field(description="unix time")
    eta: float | None = Field(default=None, description="predicted completion, unix time "
                                                        "(the planner's; None until it has one)")
    wafers: list[WaferSummary]


class LotSubmitted(BaseModel):
    lot_id: str
    state: str


class WaferHistoryEntry(BaseModel):
    t: float = Field(description="unix time")
    state: str
    location: str
    step: str = ""
    phase: str = ""
    note: str = ""


class WaferView(BaseModel):
    wafer_id: str
    lot_id: str
    slot: int
    state: str
    location: str
    step: str = ""
    reason: str | None = None
    data: dict[str, JSONScalar] = Field(default_factory=dict,
                                        description="measurements (depth_um, cured, …)")
    history: list[WaferHistoryEntry]


class E10View(BaseModel):
    state: str = Field(description="SEMI E10 equipment state as the daemon knows it")
    since: float = Field(description="unix time the current state began")
    seconds: dict[str, float] = Field(description="time in each state since the daemon started")


class ToolView(BaseModel):
    tool: str
    kind: str = Field("", description="exposure, oven or etcher (a line may have several "
                                      "tools of one kind, each named by its key)")
    connected: bool
    state: str | None = Field(None, description="the tool's own state (IDLE, ETCHING, …)")
    busy: bool = Field(description="a job step runs on the tool")
    lot_id: str | None = None
    wafer_id: str | None = None
    step: str | None = None
    engineering: bool = Field(False, description="taken: the scheduler gives it no work")
    take_pending: bool = Field(False, description="taken, effective when the step ends")
    taken_by: str | None = None
    alarms: list[str] = Field(default_factory=list, description="the tool's own alarm names")
    held: bool = Field(False, description="held for a person: a tool alarm (or a latched one "
                                          "on an idle tool) waits for an acknowledgement")
    held_reason: str | None = Field(None, description="why, and what a person must do")
    e10: E10View | None = None


class ManualReply(BaseModel):
    tool: str
    command: str
    reply: JSONScalar | list[JSONScalar] | dict[str, Any] = None


class AlarmView(BaseModel):
    id: int
    tool: str
    kind: str
    text: str
    lot_id: str | None = None
    wafer_ids: list[str] = Field(default_factory=list)
    raised_at: float
    active: bool
    acked_at: float | None = None
    acked_by: str | None = None


class HealthView(BaseModel):
    status: str = Field(description="ok, or degraded (a tool unreachable, journal trouble)")
    journal: bool
    tools: dict[str, bool] = Field(description="tool -> connected")
    lots_active: int


class PlanStep(BaseModel):
    wafer_id: str
    lot_id: str
    step: str = Field(description="expose, cure or etch")
    tool: str
    start_s: float = Field(description="tool seconds from the plan's start")
    end_s: float


class PlanView(BaseModel):
    """The planner's plan of the line from its current state (``sequencer.runner.planner``),
    remade on each state change (debounced); empty before the first."""

    planned_at: float | None = Field(default=None, description="unix time of the plan's start")
    makespan_s: float = Field(default=0.0, description="tool seconds to the last step's end")
    lots: dict[str, float] = Field(default_factory=dict,
                                   description="lot -> tool seconds to its last step's end")
    utilisation: dict[str, float] = Field(default_factory=dict)
    steps: list[PlanStep] = Field(default_factory=list)


class LineEvent(BaseModel):
    """A state change or alarm, as the engine emits it (``sequencer.runner.alarms.Event`` fits).

    Kinds the daemon understands: ``job`` (data.src/dst = E40 states), ``wafer``
    (data.src/dst = E90 states), ``step_start``/``step_end`` (tool, step, one per
    wafer; the duration is step_end.t − step_start.t unless data.duration_s is
    given), ``alarm`` (data.id, kind, text; data.down false = the tool keeps
    running), ``alarm_ack`` (data.id), ``tool`` (data.comms = UNKNOWN|OK), ``take``/
    ``give`` (the tool entered/left ENGINEERING), ``command`` (data.command,
    duration_s, outcome), ``batch``, ``reading`` (a step's live readings: data.elapsed_s,
    expected_s, wafers and the values read; ``sequencer/runner/steps/live.py``). The
    daemon adds ``e10`` (data.state, previous).
    ``data.state`` is accepted for ``dst`` and for ``comms``.
    """

    def new_state(self) -> str | None:
        """The state a ``job``/``wafer`` event moved to, or a ``tool`` event's comms."""
        for key in ("dst", "comms", "state"):
            if isinstance(self.data.get(key), str):
                return str(self.data[key])
        return None

    kind: str
    t: float
    lot_id: str | None = None
    wafer_id: str | None = None
    tool: str | None = None
    step: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


# --- the protocol -----------------------------------------------------------------------
@runtime_checkable
class LineControl(Protocol):
    """What the daemon needs from the engine. ``who`` is the audited principal name."""

    async def start(self) -> None:
        """Connect the tools and resume the journal's unfinished lots."""

    async def stop(self) -> None:
        """Graceful: start no new step, let the command in flight finish, flush the journal."""

    def tools(self) -> list[str]: ...

    async def submit_lot(self, lot: Lot) -> str:
        """Queue the lot; Conflict if its id or a wafer id is already active."""

    def lots(self) -> list[LotView]: ...

    def lot(self, lot_id: str) -> LotView: ...

    async def pause(self, lot_id: str) -> LotView: ...

    async def resume(self, lot_id: str) -> LotView: ...

    async def abort(self, lot_id: str) -> LotView: ...

    def wafer(self, wafer_id: str) -> WaferView: ...

    async def release_wafers(self, wafer_ids: list[str], reason: str,
                             who: str) -> list[WaferView]:
        """An engineer's disposition: each held (STOPPED) wafer goes on to its next step
        (the one after the step it was held in), with ``who`` and ``reason`` in its
        history. All or nothing: a wafer that is not held raises ``Conflict`` naming it,
        an unknown one ``NotFound``, and then none of the listed wafers changes.
        Returns the wafers' views in the order given."""

    async def scrap_wafers(self, wafer_ids: list[str], reason: str,
                           who: str) -> list[WaferView]:
        """An engineer's disposition: each held (STOPPED) wafer ends REJECTED (final),
        with ``who`` and ``reason`` as its reason. All or nothing, as ``release_wafers``."""

    def tool_status(self, tool: str) -> ToolView: ...

    def tool_busy(self, tool: str) -> bool: ...

    async def take(self, tool: str, force: bool, who: str) -> ToolView:
        """ENGINEERING now if idle, else once the step ends; ``force`` pauses the job now."""

    async def give(self, tool: str, who: str) -> ToolView: ...

    async def manual(self, tool: str, command: str, args: Mapping[str, Any],
                     who: str = "?") -> ManualReply:
        """Run one validated manual command (``commands.COMMANDS``) on the tool; ``who`` sent
        it (a command that changes the tool is journaled with it, so a step that then
        fails on that tool names the person in its wafers' reasons)."""

    def alarms(self, active_only: bool) -> list[AlarmView]: ...

    async def ack_alarm(self, alarm_id: int, who: str) -> AlarmView: ...

    def events(self) -> AsyncIterator[LineEvent]: ...

    def health(self) -> HealthView: ...

    def plan(self) -> PlanView:
        """The planner's last plan of the line from its current state (lots in progress
        included); each lot's ``eta`` in ``lots()`` comes from it."""

    def recipes_dir(self) -> Path:
        """The folder the line finds flows and recipes in by name (a lot's flow when it is
        submitted, and again when a restart resumes it): the GEM face's process programs."""

    def time_scale(self) -> float:
        """Tool seconds per wall second (1 with real tools): events carry unix time, a
        step's own figures (``reading`` events' ``elapsed_s``/``expected_s``) tool seconds."""

    # --- what the GEM face reads and changes (sequencer/faces/gem) ---------------------
    def constants(self) -> dict[str, float]:
        """The scheduling constants a host may change live (its equipment constants):
        ``q_develop_cure_s``, ``q_cure_etch_s`` and ``poll_s.<tool>``, in tool seconds."""

    async def set_constant(self, name: str, value: float, who: str) -> None:
        """Change one of ``constants()`` now (``NotFound`` for another name); the next
        queue-time check or poll uses it. The caller checks the range and audits."""

    def wafer_results(self, wafer_id: str) -> WaferResults | None:
        """The wafer's summary with its measurements (``data``) from memory, no history
        read (the GEM face reads it for every substrate event); None if not in a live lot."""

    def tool_readings(self, tool: str) -> dict[str, float]:
        """The tool's gauges from its last status, those it has of ``chamber_c``,
        ``o2_ppm``, ``pressure_mtorr``, ``rf_forward_w`` (the GEM face's SVs) and
        ``setpoint_c``, ``wafer_c``, ``segment``, ``soak_left_s``, ``n2_flow_slm``,
        ``rf_reflected_w``, ``oes_co``, ``oes_o``, ``dose``, ``intensity`` (the screen's
        cards); empty before a first status."""
