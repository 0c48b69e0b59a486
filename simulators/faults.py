"""Fault injection shared by the three simulators.

A fault is a name (and optional parameters) switched on until cleared, except
the one-shot actions (:data:`ONE_SHOT`), which act once and are never listed as
active. The communication faults and the power cycle are the same on every
tool: the transport layer applies the comms faults (and drops every connection
on a power cycle); the tool's model reads its process faults and reboots on a
power cycle (each tool's power-on: `docs/sim-*.md`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Faults every tool honours (names as `viaform sim fault TOOL FAULT` takes them).
COMMS_FAULTS = {
    "drop": "close every open host connection now (one-shot; new connections are accepted)",
    "mute": "stop answering: requests are read and discarded",
    "garble": "corrupt every reply",
    "slow": "delay every reply by params['delay_s'] wall seconds (default 1.0)",
    "power_cycle": "switch the tool off and on (one-shot): it reboots as its manual's power-on "
    "says, every connection dropped, a new SYSTem:BOOT?; wafers stay where they are",
}

#: Actions that happen once when injected and are never active afterwards.
ONE_SHOT = frozenset({"drop", "power_cycle"})

#: Process faults, per tool (names as `viaform sim fault TOOL FAULT` takes them).
TOOL_FAULTS: dict[str, dict[str, str]] = {
    "exposure": {
        "door_open": "the cell door opens (DOOR_OPEN, +201)",
        "lamp_fail": "the i-line lamp fails (LAMP_FAIL, +202)",
        "lamp_low": "lamp intensity low warning (LAMP_LOW)",
        "vacuum_loss": "chuck vacuum lost (VACUUM_LOSS)",
        "shutter_fault": "the shutter fails (SHUTTER_FAULT)",
        "alignment_fail": "the next load fails alignment (+203)",
    },
    "etcher": {
        "door_open": "the load-lock door opens (DOOR_OPEN, +301)",
        "vacuum_loss": "chamber vacuum lost (VACUUM_LOSS, +302)",
        "rf_reflected": "reflected power above 20 % of forward (RF_REFLECTED after 5 s, +303)",
        "gas_fault": "a mass-flow controller cannot reach setpoint (GAS_FAULT, +304)",
        "pump_fault": "the dry pump stops (PUMP_FAULT, +302)",
    },
    "oven": {
        "door_open": "the oven door opens",
        "o2_purge_fail": "a leak keeps O2 above every limit: the purge never finishes",
        "over_temperature": "the heater sticks on: the chamber runs past the high limit",
        "sensor_break": "the chamber thermocouple breaks",
        "n2_flow_low": "nitrogen supply pressure lost",
    },
}


@dataclass
class Faults:
    """The faults active on one tool. Listeners hear every change."""

    tool: str
    kind: str = ""  # exposure | oven | etcher ("": the tool's name is its kind)
    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    _listeners: list[Callable[[str, bool, dict[str, Any]], None]] = field(default_factory=list)

    def known(self) -> dict[str, str]:
        return {**COMMS_FAULTS, **TOOL_FAULTS.get(self.kind or self.tool, {})}

    def inject(self, name: str, **params: Any) -> None:
        if name not in self.known():
            raise KeyError(
                f"unknown fault {name!r} for {self.tool}; known: {', '.join(sorted(self.known()))}"
            )
        if name not in ONE_SHOT:  # a one-shot action acts (the listeners) and is gone
            self.active[name] = dict(params)
        for listener in list(self._listeners):
            listener(name, True, dict(params))

    def clear(self, name: str | None = None) -> None:
        names = list(self.active) if name is None else [name]
        for n in names:
            if self.active.pop(n, None) is not None:
                for listener in list(self._listeners):
                    listener(n, False, {})

    def is_on(self, name: str) -> bool:
        return name in self.active

    def param(self, name: str, key: str, default: Any) -> Any:
        return self.active.get(name, {}).get(key, default)

    def subscribe(self, listener: Callable[[str, bool, dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, bool, dict[str, Any]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
