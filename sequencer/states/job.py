"""A lot as a SEMI E40 process job.

::

    QUEUED -setup-> SETTING_UP -ready-> WAITING_FOR_START -begin-> PROCESSING
    PROCESSING -finish-> PROCESS_COMPLETE
    PROCESSING -pause-> PAUSING -paused-> PAUSED -resume-> PROCESSING
    (any active) -stop-> STOPPING -stopped-> STOPPED
    any non-final -abort_job-> ABORTING -aborted-> ABORTED

The job pauses while a tool it has a wafer on is UNKNOWN (comms lost) and resumes
when the tool is read back. It completes when every wafer is in a final E90
state, held ones included (their reasons are on the wafers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transitions import Machine

if TYPE_CHECKING:
    from transitions.core import TransitionConfigDict

STATES = ["QUEUED", "SETTING_UP", "WAITING_FOR_START", "PROCESSING", "PROCESS_COMPLETE",
          "PAUSING", "PAUSED", "STOPPING", "ABORTING", "STOPPED", "ABORTED"]
FINAL = frozenset({"PROCESS_COMPLETE", "STOPPED", "ABORTED"})
_ACTIVE = ["QUEUED", "SETTING_UP", "WAITING_FOR_START", "PROCESSING", "PAUSING", "PAUSED"]

TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "setup", "source": "QUEUED", "dest": "SETTING_UP"},
    {"trigger": "ready", "source": "SETTING_UP", "dest": "WAITING_FOR_START"},
    {"trigger": "begin", "source": "WAITING_FOR_START", "dest": "PROCESSING"},
    {"trigger": "finish", "source": "PROCESSING", "dest": "PROCESS_COMPLETE"},
    {"trigger": "pause", "source": "PROCESSING", "dest": "PAUSING"},
    {"trigger": "paused", "source": "PAUSING", "dest": "PAUSED"},
    {"trigger": "resume", "source": ["PAUSING", "PAUSED"], "dest": "PROCESSING"},
    {"trigger": "stop", "source": _ACTIVE, "dest": "STOPPING"},
    {"trigger": "stopped", "source": "STOPPING", "dest": "STOPPED"},
    {"trigger": "abort_job", "source": _ACTIVE + ["STOPPING"], "dest": "ABORTING"},
    {"trigger": "aborted", "source": "ABORTING", "dest": "ABORTED"},
]

JobListener = Callable[["ProcessJob", str, str], None]


class ProcessJob:
    """The process job of one lot; ``listener`` hears every state change."""

    state: str

    if TYPE_CHECKING:  # the triggers ``transitions`` adds from TRANSITIONS, for mypy
        def setup(self, **kwargs: Any) -> bool: ...
        def ready(self, **kwargs: Any) -> bool: ...
        def begin(self, **kwargs: Any) -> bool: ...
        def finish(self, **kwargs: Any) -> bool: ...
        def pause(self, **kwargs: Any) -> bool: ...
        def paused(self, **kwargs: Any) -> bool: ...
        def resume(self, **kwargs: Any) -> bool: ...
        def stop(self, **kwargs: Any) -> bool: ...
        def stopped(self, **kwargs: Any) -> bool: ...
        def abort_job(self, **kwargs: Any) -> bool: ...
        def aborted(self, **kwargs: Any) -> bool: ...

    def __init__(self, lot_id: str, *, listener: JobListener | None = None,
                 state: str = "QUEUED") -> None:
        self.lot_id = lot_id
        self._listener = listener
        self.machine = Machine(model=self, states=STATES, transitions=TRANSITIONS,
                               initial=state, send_event=True, auto_transitions=False,
                               after_state_change="_changed")

    def _changed(self, event: Any) -> None:
        if self._listener is not None:
            self._listener(self, event.transition.source, event.transition.dest)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def restore(self, state: str) -> None:
        self.machine.set_state(state)

    def start_processing(self) -> None:
        """QUEUED/SETTING_UP/WAITING_FOR_START → PROCESSING, whatever of it is left."""
        if self.state == "QUEUED":
            self.setup()
        if self.state == "SETTING_UP":
            self.ready()
        if self.state == "WAITING_FOR_START":
            self.begin()

    def hold_for_comms(self) -> None:
        """PROCESSING → PAUSING → PAUSED (a tool of this job went UNKNOWN)."""
        if self.state == "PROCESSING":
            self.pause()
            self.paused()

    def comms_back(self) -> None:
        if self.state in ("PAUSING", "PAUSED"):
            self.resume()
