"""A SEMI E94 control job: a group of process jobs (and the carriers they take) run as one.

::

    (created) -> QUEUED -select-> SELECTED -deselect-> QUEUED
    SELECTED -auto_start-> EXECUTING            (StartMethod true: the CJ starts at once)
    SELECTED -wait_for_start-> WAITING_FOR_START -start-> EXECUTING   (StartMethod false)
    EXECUTING -pause-> PAUSED -resume-> EXECUTING
    EXECUTING -finish-> COMPLETED               (every process job ended)
    SELECTED | WAITING_FOR_START | EXECUTING | PAUSED -stop|abort-> COMPLETED

``completion`` says how a COMPLETED job ended (``normal``, ``stopped``, ``aborted``),
since E94 has one final state for all three. CJCancel of a QUEUED job and HOQ (head of
queue) are not state changes: the job leaves the queue, or moves to its front, and the
caller keeps the queue. ``listener`` hears every state change with the trigger's name
(the transition as E94 names it: select, deselect, start, pause, …).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transitions import Machine

if TYPE_CHECKING:
    from transitions.core import TransitionConfigDict

STATES = ["QUEUED", "SELECTED", "WAITING_FOR_START", "EXECUTING", "PAUSED", "COMPLETED"]
ACTIVE = ["SELECTED", "WAITING_FOR_START", "EXECUTING", "PAUSED"]
FINAL = frozenset({"COMPLETED"})
#: E94's state numbers (the ``CJState`` attribute: QUEUED 0 … COMPLETED 5).
STATE_CODES = {state: i for i, state in enumerate(STATES)}

TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "select", "source": "QUEUED", "dest": "SELECTED"},
    {"trigger": "deselect", "source": "SELECTED", "dest": "QUEUED"},
    {"trigger": "auto_start", "source": "SELECTED", "dest": "EXECUTING"},
    {"trigger": "wait_for_start", "source": "SELECTED", "dest": "WAITING_FOR_START"},
    {"trigger": "start", "source": "WAITING_FOR_START", "dest": "EXECUTING"},
    {"trigger": "pause", "source": "EXECUTING", "dest": "PAUSED"},
    {"trigger": "resume", "source": "PAUSED", "dest": "EXECUTING"},
    {"trigger": "finish", "source": "EXECUTING", "dest": "COMPLETED"},
    {"trigger": "stop", "source": ACTIVE, "dest": "COMPLETED"},
    {"trigger": "abort", "source": ACTIVE, "dest": "COMPLETED"},
]
COMPLETIONS = {"finish": "normal", "stop": "stopped", "abort": "aborted"}

ControlJobListener = Callable[["ControlJob", str, str, str], None]


class ControlJob:
    """One control job: its id, its process jobs and carriers, its E94 state."""

    state: str

    if TYPE_CHECKING:  # the triggers ``transitions`` adds from TRANSITIONS, for mypy
        def select(self, **kwargs: Any) -> bool: ...
        def deselect(self, **kwargs: Any) -> bool: ...
        def auto_start(self, **kwargs: Any) -> bool: ...
        def wait_for_start(self, **kwargs: Any) -> bool: ...
        def start(self, **kwargs: Any) -> bool: ...
        def pause(self, **kwargs: Any) -> bool: ...
        def resume(self, **kwargs: Any) -> bool: ...
        def finish(self, **kwargs: Any) -> bool: ...
        def stop(self, **kwargs: Any) -> bool: ...
        def abort(self, **kwargs: Any) -> bool: ...

    def __init__(self, cj_id: str, process_jobs: list[str], carriers: list[str], *,
                 auto_start: bool = False, listener: ControlJobListener | None = None,
                 state: str = "QUEUED", completion: str = "") -> None:
        self.cj_id = cj_id
        self.process_jobs = list(process_jobs)
        self.carriers = list(carriers)
        self.start_method_auto = auto_start
        self.completion = completion
        self._listener = listener
        self.machine = Machine(model=self, states=STATES, transitions=TRANSITIONS,
                               initial=state, send_event=True, auto_transitions=False,
                               after_state_change="_changed")

    def _changed(self, event: Any) -> None:
        trigger = event.event.name
        if event.transition.dest == "COMPLETED":
            self.completion = COMPLETIONS[trigger]
        if self._listener is not None:
            self._listener(self, event.transition.source, event.transition.dest, trigger)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def begin(self) -> None:
        """QUEUED → SELECTED → EXECUTING (StartMethod true) or WAITING_FOR_START."""
        if self.state == "QUEUED":
            self.select()
        if self.state == "SELECTED":
            if self.start_method_auto:
                self.auto_start()
            else:
                self.wait_for_start()

    def to_json(self) -> dict[str, Any]:
        return {"cj_id": self.cj_id, "process_jobs": self.process_jobs,
                "carriers": self.carriers, "auto_start": self.start_method_auto,
                "state": self.state, "completion": self.completion}

    @classmethod
    def from_json(cls, raw: dict[str, Any],
                  listener: ControlJobListener | None = None) -> ControlJob:
        return cls(str(raw["cj_id"]), list(raw["process_jobs"]), list(raw["carriers"]),
                   auto_start=bool(raw["auto_start"]), listener=listener,
                   state=str(raw["state"]), completion=str(raw.get("completion", "")))
