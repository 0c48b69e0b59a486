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

    disposition of a held wafer (an engineer's, audited; :func:`dispose`):
    STOPPED --release--> IN_PROCESS        (held after its route began: its next step)
    STOPPED --release_unstarted--> NEEDS_PROCESSING   (held before anything was done)
    STOPPED --scrap--> REJECTED

E90 has no way back from STOPPED; the release transitions are this line's extension for
a person's disposition (the reason journaled with them says who and why), so that a
SECS/GEM front end sees an ordinary IN_PROCESS / NEEDS_PROCESSING substrate again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from transitions import Machine

if TYPE_CHECKING:
    from transitions.core import TransitionConfigDict

STATES = ["NEEDS_PROCESSING", "IN_PROCESS", "PROCESSED", "ABORTED", "STOPPED",
          "REJECTED", "LOST", "SKIPPED"]
FINAL = frozenset({"PROCESSED", "ABORTED", "STOPPED", "REJECTED", "LOST", "SKIPPED"})

TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "start", "source": "NEEDS_PROCESSING", "dest": "IN_PROCESS"},
    {"trigger": "complete", "source": "IN_PROCESS", "dest": "PROCESSED"},
    {"trigger": "abort", "source": "IN_PROCESS", "dest": "ABORTED"},
    {"trigger": "reject", "source": "IN_PROCESS", "dest": "REJECTED"},
    {"trigger": "hold", "source": ["NEEDS_PROCESSING", "IN_PROCESS"], "dest": "STOPPED"},
    {"trigger": "skip", "source": "NEEDS_PROCESSING", "dest": "SKIPPED"},
    {"trigger": "lose", "source": ["NEEDS_PROCESSING", "IN_PROCESS"], "dest": "LOST"},
    {"trigger": "release", "source": "STOPPED", "dest": "IN_PROCESS"},
    {"trigger": "release_unstarted", "source": "STOPPED", "dest": "NEEDS_PROCESSING"},
    {"trigger": "scrap", "source": "STOPPED", "dest": "REJECTED"},
]
DISPOSITIONS = ("release", "scrap")


@dataclass
class WaferData:
    """Everything journaled about a wafer besides its state. Times are tool seconds."""

    location: str = "stocker"
    phase: str = ""  # last finished phase of the step in progress ("" = none)
    step: str = ""  # step in progress ("expose", "cure", "etch" or "")
    tool: str = ""  # the tool the step in progress runs on (a restart resumes it there)
    #: step → the tool that ran it (the last time), e.g. {"etch": "etcher-2"}
    ran: dict[str, str] = field(default_factory=dict)
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
    #: the cure batch went beyond the recipe's limits (what, how much, how long); set with
    #: ``cured`` (the program ran to its end) and the wafer held: only an engineer's
    #: release sends it on to etch
    cure_excursion: str = ""
    reason: str = ""


_DATA_FIELDS = tuple(f.name for f in fields(WaferData))

StateListener = Callable[["Substrate", str, str, str], None]  # (wafer, src, dst, reason)


class Substrate:
    """One wafer of a lot. Triggers: start, complete, abort(reason), reject(reason),
    hold(reason), skip(reason), lose(reason), and for a held one release(reason),
    release_unstarted(reason), scrap(reason); ``listener`` hears every change."""

    state: str

    if TYPE_CHECKING:  # the triggers ``transitions`` adds from TRANSITIONS, for mypy
        def start(self, **kwargs: Any) -> bool: ...
        def complete(self, **kwargs: Any) -> bool: ...
        def abort(self, **kwargs: Any) -> bool: ...
        def reject(self, **kwargs: Any) -> bool: ...
        def hold(self, **kwargs: Any) -> bool: ...
        def skip(self, **kwargs: Any) -> bool: ...
        def lose(self, **kwargs: Any) -> bool: ...
        def release(self, **kwargs: Any) -> bool: ...
        def release_unstarted(self, **kwargs: Any) -> bool: ...
        def scrap(self, **kwargs: Any) -> bool: ...

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
        """The data as a fresh dict (what ``dataclasses.asdict`` gives for these flat
        fields, ``ran`` copied, at a fifth of its cost: it runs at every journaled step)."""
        out = {name: getattr(self.data, name) for name in _DATA_FIELDS}
        out["ran"] = dict(self.data.ran)
        return out

    def __repr__(self) -> str:
        return f"Substrate({self.wafer_id!r}, {self.state})"



def disposition_refusal(w: Substrate, action: str) -> str | None:
    """Why ``action`` (release / scrap) may not be done to ``w`` now (None: it may).

    Only a held (STOPPED) wafer is disposed of. A release also needs the wafer in the
    stocker: a wafer recorded on a tool (one that could not be made safe) is first moved
    out by a person (``viaform wafer moved W --to stocker``) — a worker would otherwise
    send it to a tool while it sits in another.
    """
    if action not in DISPOSITIONS:
        return f"{action!r}: choose release or scrap"
    if w.state != "STOPPED":
        return (f"{w.wafer_id} is {w.state}, not held for disposition: only a STOPPED "
                f"wafer can be {action}{'d' if action.endswith('e') else 'ped'}")
    if action == "release" and w.data.location != "stocker":
        return (f"{w.wafer_id} is recorded at {w.data.location}, not in the stocker: move it "
                f"out first (viaform wafer moved {w.wafer_id} --to stocker)")
    return None


def dispose(w: Substrate, action: str, reason: str, who: str, held_from: str) -> None:
    """Release or scrap a held wafer (check :func:`disposition_refusal` first).

    ``held_from`` is the state it was held from (the journal's transition into STOPPED):
    from NEEDS_PROCESSING it goes back there (nothing was done to it), else to IN_PROCESS.
    A release forgets the step it was held in (``step``/``phase``): that step was ended
    or abandoned when it was held, so the wafer goes on to the first step the journal
    says it has not done (expose+develop → cure → etch). A start on a tool whose job
    records already know the wafer is held again before anything is sent (the job-record
    check before every start), so nothing is re-exposed or re-etched blind. The reason
    journaled with the transition is ``released by WHO: REASON`` (``scrapped by …``).
    """
    if action == "scrap":
        w.scrap(reason=f"scrapped by {who}: {reason}")
        return
    w.data.step, w.data.phase = "", ""
    text = f"released by {who}: {reason}"
    if held_from == "NEEDS_PROCESSING":
        w.release_unstarted(reason=text)
    else:
        w.release(reason=text)


def held_from(transitions: list[tuple[str, str, str]]) -> str:
    """The state a wafer was last held from, given its journaled (src, dst, reason)."""
    for src, dst, _ in reversed(transitions):
        if dst == "STOPPED":
            return src
    return "IN_PROCESS"
