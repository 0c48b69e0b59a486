"""A SEMI E87 carrier (a lot's cassette) and a load port's access mode.

A carrier has three state machines that run side by side, each with E87's names::

    ID status:        ID_NOT_READ -id_read-> WAITING_FOR_HOST
                      ID_NOT_READ | WAITING_FOR_HOST -id_verified-> ID_VERIFICATION_OK
                      ID_NOT_READ | WAITING_FOR_HOST -id_failed-> ID_VERIFICATION_FAILED
    slot map status:  SLOT_MAP_NOT_READ -map_read-> WAITING_FOR_HOST
                      SLOT_MAP_NOT_READ | WAITING_FOR_HOST
                          -map_verified-> SLOT_MAP_VERIFICATION_OK
                          -map_failed-> SLOT_MAP_VERIFICATION_FAILED
    accessing status: NOT_ACCESSED -access_begin-> IN_ACCESS
                      IN_ACCESS -access_complete-> CARRIER_COMPLETE
                      IN_ACCESS -access_stop-> CARRIER_STOPPED

    load port access mode: MANUAL -set_auto-> AUTO -set_manual-> MANUAL

A carrier whose ID or slot map failed verification is *held*: ``hold_reason`` says why
(one line per mismatch) and no process job may take material from it until the host
cancels it (CancelCarrier) or re-creates it with the right data (CarrierReCreate).
``listener`` hears every change as (carrier, machine, source, dest), machine being
``id``, ``slot_map`` or ``access``. The slot states of a slot map are E87's codes
(``SLOT_STATES``); ``compare_slot_maps`` lists every slot where two maps differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from transitions import Machine

if TYPE_CHECKING:
    from transitions.core import TransitionConfigDict

ID_STATES = ["ID_NOT_READ", "WAITING_FOR_HOST", "ID_VERIFICATION_OK", "ID_VERIFICATION_FAILED"]
MAP_STATES = ["SLOT_MAP_NOT_READ", "WAITING_FOR_HOST", "SLOT_MAP_VERIFICATION_OK",
              "SLOT_MAP_VERIFICATION_FAILED"]
ACCESS_STATES = ["NOT_ACCESSED", "IN_ACCESS", "CARRIER_COMPLETE", "CARRIER_STOPPED"]
ACCESS_MODES = ["MANUAL", "AUTO"]  # E87 ACCESSMODE 0 and 1
#: E87 slot states (the values of a SlotMap attribute).
SLOT_STATES = {0: "UNDEFINED", 1: "EMPTY", 2: "NOT_EMPTY", 3: "CORRECTLY_OCCUPIED",
               4: "DOUBLE_SLOTTED", 5: "CROSS_SLOTTED"}
EMPTY, CORRECTLY_OCCUPIED = 1, 3
CAPACITY = 25  # slots of the line's cassette (lots.MAX_SLOTS)

_WAITING = ["ID_NOT_READ", "WAITING_FOR_HOST"]
_MAP_WAITING = ["SLOT_MAP_NOT_READ", "WAITING_FOR_HOST"]
ID_TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "id_read", "source": "ID_NOT_READ", "dest": "WAITING_FOR_HOST"},
    {"trigger": "id_verified", "source": _WAITING, "dest": "ID_VERIFICATION_OK"},
    {"trigger": "id_failed", "source": _WAITING, "dest": "ID_VERIFICATION_FAILED"},
]
MAP_TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "map_read", "source": "SLOT_MAP_NOT_READ", "dest": "WAITING_FOR_HOST"},
    {"trigger": "map_verified", "source": _MAP_WAITING, "dest": "SLOT_MAP_VERIFICATION_OK"},
    {"trigger": "map_failed", "source": _MAP_WAITING, "dest": "SLOT_MAP_VERIFICATION_FAILED"},
]
ACCESS_TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "access_begin", "source": "NOT_ACCESSED", "dest": "IN_ACCESS"},
    {"trigger": "access_complete", "source": "IN_ACCESS", "dest": "CARRIER_COMPLETE"},
    {"trigger": "access_stop", "source": "IN_ACCESS", "dest": "CARRIER_STOPPED"},
]
MODE_TRANSITIONS: list[TransitionConfigDict] = [
    {"trigger": "set_auto", "source": "MANUAL", "dest": "AUTO"},
    {"trigger": "set_manual", "source": "AUTO", "dest": "MANUAL"},
]

CarrierListener = Callable[["Carrier", str, str, str], None]


def slot_map_of(slots: Sequence[int], capacity: int = CAPACITY) -> list[int]:
    """The slot map of a cassette holding wafers in ``slots`` (1-based): 3 there, 1 elsewhere."""
    held = set(slots)
    return [CORRECTLY_OCCUPIED if i in held else EMPTY for i in range(1, capacity + 1)]


def compare_slot_maps(actual: Sequence[int], host: Sequence[int], who: str) -> list[str]:
    """Every difference between the carrier as ``who`` has it and the host's map, one line
    per slot, e.g. ``slot 3: the host says CORRECTLY_OCCUPIED, lot L1 has it EMPTY``."""
    out: list[str] = []
    if len(host) != len(actual):
        out.append(f"the host's slot map has {len(host)} slots, the carrier {len(actual)}")
    for i, (have, said) in enumerate(zip(actual, host, strict=False), start=1):
        if have != said:
            out.append(f"slot {i}: the host says {SLOT_STATES.get(said, said)}, {who} has it "
                       f"{SLOT_STATES.get(have, have)}")
    return out


class Carrier:
    """One carrier at a load port: the cassette of lot ``lot_id`` with wafers by slot."""

    id_status: str
    slot_map_status: str
    accessing_status: str

    if TYPE_CHECKING:  # the triggers ``transitions`` adds, for mypy
        def id_read(self, **kwargs: Any) -> bool: ...
        def id_verified(self, **kwargs: Any) -> bool: ...
        def id_failed(self, **kwargs: Any) -> bool: ...
        def map_read(self, **kwargs: Any) -> bool: ...
        def map_verified(self, **kwargs: Any) -> bool: ...
        def map_failed(self, **kwargs: Any) -> bool: ...
        def access_begin(self, **kwargs: Any) -> bool: ...
        def access_complete(self, **kwargs: Any) -> bool: ...
        def access_stop(self, **kwargs: Any) -> bool: ...

    def __init__(self, carrier_id: str, port: int, lot_id: str | None,
                 content: Mapping[int, str], *, listener: CarrierListener | None = None,
                 states: Mapping[str, str] | None = None, hold_reason: str = "",
                 canceled: bool = False) -> None:
        self.carrier_id = carrier_id
        self.port = port
        self.lot_id = lot_id
        self.content = dict(sorted(content.items()))  # slot → wafer id
        self.hold_reason = hold_reason
        self.canceled = canceled
        self._listener = listener
        st = dict(states or {})
        self.machines = {
            name: Machine(model=self, states=states_, transitions=trans,
                          initial=st.get(attr, states_[0]), model_attribute=attr,
                          send_event=True, auto_transitions=False,
                          after_state_change=self._changer(name))
            for name, attr, states_, trans in (
                ("id", "id_status", ID_STATES, ID_TRANSITIONS),
                ("slot_map", "slot_map_status", MAP_STATES, MAP_TRANSITIONS),
                ("access", "accessing_status", ACCESS_STATES, ACCESS_TRANSITIONS))}

    def _changer(self, name: str) -> Callable[[Any], None]:
        def changed(event: Any) -> None:
            if self._listener is not None:
                self._listener(self, name, event.transition.source, event.transition.dest)
        return changed

    @property
    def slot_map(self) -> list[int]:
        return slot_map_of(list(self.content))

    @property
    def verified(self) -> bool:
        return (self.id_status == "ID_VERIFICATION_OK"
                and self.slot_map_status == "SLOT_MAP_VERIFICATION_OK" and not self.canceled)

    @property
    def held(self) -> bool:
        return bool(self.hold_reason)

    def hold(self, reason: str) -> None:
        self.hold_reason = reason

    def to_json(self) -> dict[str, Any]:
        return {"carrier_id": self.carrier_id, "port": self.port, "lot_id": self.lot_id,
                "content": {str(k): v for k, v in self.content.items()},
                "states": {"id_status": self.id_status,
                           "slot_map_status": self.slot_map_status,
                           "accessing_status": self.accessing_status},
                "hold_reason": self.hold_reason, "canceled": self.canceled}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any],
                  listener: CarrierListener | None = None) -> Carrier:
        return cls(str(raw["carrier_id"]), int(raw["port"]), raw.get("lot_id"),
                   {int(k): str(v) for k, v in dict(raw["content"]).items()},
                   listener=listener, states=dict(raw["states"]),
                   hold_reason=str(raw.get("hold_reason", "")),
                   canceled=bool(raw.get("canceled", False)))


class LoadPort:
    """A load port's E87 access mode (MANUAL: an operator loads it; AUTO: the AMHS)."""

    access_mode: str

    if TYPE_CHECKING:
        def set_auto(self, **kwargs: Any) -> bool: ...
        def set_manual(self, **kwargs: Any) -> bool: ...

    def __init__(self, port: int, mode: str = "MANUAL",
                 listener: Callable[[LoadPort, str, str], None] | None = None) -> None:
        self.port = port
        self._listener = listener
        self.machine = Machine(model=self, states=ACCESS_MODES, transitions=MODE_TRANSITIONS,
                               initial=mode, model_attribute="access_mode", send_event=True,
                               auto_transitions=False, after_state_change="_changed")

    def _changed(self, event: Any) -> None:
        if self._listener is not None:
            self._listener(self, event.transition.source, event.transition.dest)

    def change_to(self, mode: str) -> bool:
        """Go to ``mode`` (MANUAL or AUTO); False when it already is (nothing changes)."""
        if mode == self.access_mode:
            return False
        if mode == "AUTO":
            self.set_auto()
        else:
            self.set_manual()
        return True
