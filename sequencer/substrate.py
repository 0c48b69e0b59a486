"""A wafer as a SEMI E90 substrate: processing state, location, route progress, why it stopped.

Processing states keep E90's names. IN_PROCESS covers the whole route (expose +
develop → cure → etch), including the waits between tools; ``developed``,
``cured`` and ``etched`` say how far it got. "Held for disposition" is STOPPED
with a reason. ``phase`` is the last finished phase of the step in progress
(journaled, so a restart resumes a step where it stood).

::

    NEEDS_PROCESSING --start--> IN_PROCESS --complete--> PROCESSED
          |  \\--skip--> SKIPPED        |--abort--> ABORTED
          |                             |--reject--> REJECTED
          \\--hold--> STOPPED <--hold---/
    any non-final --lose--> LOST
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from transitions import Machine

STATES = ["NEEDS_PROCESSING", "IN_PROCESS", "PROCESSED", "ABORTED", "STOPPED",
          "REJECTED", "LOST", "SKIPPED"]
FINAL = frozenset({"PROCESSED", "ABORTED", "STOPPED", "REJECTED", "LOST", "SKIPPED"})

TRANSITIONS = [
    {"trigger": "start", "source": "NEEDS_PROCESSING", "dest": "IN_PROCESS"},
    {"trigger": "complete", "source": "IN_PROCESS", "dest": "PROCESSED"},
    {"trigger": "abort", "source": "IN_PROCESS", "dest": "ABORTED"},
    {"trigger": "reject", "source": "IN_PROCESS", "dest": "REJECTED"},
    {"trigger": "hold", "source": ["NEEDS_PROCESSING", "IN_PROCESS"], "dest": "STOPPED"},
    {"trigger": "skip", "source": "NEEDS_PROCESSING", "dest": "SKIPPED"},
    {"trigger": "lose", "source": ["NEEDS_PROCESSING", "IN_PROCESS"], "dest": "LOST"},
]


@dataclass
class WaferData:
    """Everything journaled about a wafer besides its state. Times are tool seconds."""

    location: str = "stocker"
    phase: str = ""  # last finished phase of the step in progress ("" = none)
    step: str = ""  # step in progress ("expose", "cure", "etch" or "")
    developed: bool = False
    cured: bool = False
    etched: bool = False
    dose: float | None = None
    film_um: float | None = None
    depth_um: float | None = None
    residual_um: float | None = None  # measured after develop (before cure)
    residual_after_cure_um: float | None = None
    cure_batch: int | None = None
    time_at_temp_s: float | None = None
    etch_time_s: int | None = None
    removed_um: float | None = None
    open: bool | None = None
    develop_end: float | None = None
    cure_start: float | None = None
    cure_end: float | None = None
    etch_start: float | None = None
    reason: str = ""


StateListener = Callable[["Substrate", str, str, str], None]  # (wafer, src, dst, reason)


class Substrate:
    """One wafer of a lot. Triggers: start, complete, abort(reason), reject(reason),
    hold(reason), skip(reason), lose(reason); ``listener`` hears every change."""

    state: str

    def __init__(self, wafer_id: str, lot_id: str, slot: int, *,
                 listener: StateListener | None = None, state: str = "NEEDS_PROCESSING",
                 data: WaferData | None = None) -> None:
        self.wafer_id = wafer_id
        self.lot_id = lot_id
        self.slot = slot
        self.data = data or WaferData()
        self._listener = listener
        self.machine = Machine(model=self, states=STATES, transitions=TRANSITIONS,
                               initial=state, send_event=True, auto_transitions=False,
                               after_state_change="_changed", before_state_change="_note")

    def _note(self, event: Any) -> None:
        reason = event.kwargs.get("reason", "")
        if reason:
            self.data.reason = reason

    def _changed(self, event: Any) -> None:
        if self._listener is not None:
            self._listener(self, event.transition.source, event.transition.dest,
                           event.kwargs.get("reason", ""))

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def held(self) -> bool:
        return self.state == "STOPPED"

    def restore(self, state: str, data: dict[str, Any]) -> None:
        """Back to a journaled state (``set_state``: no callbacks, nothing journaled)."""
        self.machine.set_state(state)
        names = {f.name for f in fields(WaferData)}
        self.data = WaferData(**{k: v for k, v in data.items() if k in names})

    def data_dict(self) -> dict[str, Any]:
        return asdict(self.data)

    def __repr__(self) -> str:
        return f"Substrate({self.wafer_id!r}, {self.state})"

