"""The LX-365's alarms as data: names, the faults that cause them, their codes, what they stop.

Shared by the SCPI face (:mod:`simulators.exposure_scpi`: starts refused, ``ALARm?``) and the
model (:mod:`simulators.exposure`: alarms raised when their cause appears).
"""

from __future__ import annotations

from simulators.exposure_model import State

#: ALARm? names in the manual's order; fault name -> alarm name; alarm -> the code it queues
ALARMS = ("DOOR_OPEN", "LAMP_LOW", "LAMP_FAIL", "SHUTTER_FAULT", "VACUUM_LOSS")
FAULT_ALARMS = {
    "door_open": "DOOR_OPEN",
    "lamp_low": "LAMP_LOW",
    "lamp_fail": "LAMP_FAIL",
    "shutter_fault": "SHUTTER_FAULT",
    "vacuum_loss": "VACUUM_LOSS",
}
WARNINGS = ("LAMP_LOW",)  # does not stop work, queues nothing
ALARM_CODES = {"DOOR_OPEN": 201, "LAMP_FAIL": 202, "SHUTTER_FAULT": 202, "VACUUM_LOSS": 201}
#: alarms whose cause stops a running operation of that state (and refuses its start)
STOPS: dict[State, frozenset[str]] = {
    State.LOADING: frozenset({"DOOR_OPEN", "LAMP_FAIL", "VACUUM_LOSS"}),
    State.EXPOSING: frozenset({"DOOR_OPEN", "LAMP_FAIL", "VACUUM_LOSS", "SHUTTER_FAULT"}),
    State.DEVELOPING: frozenset({"DOOR_OPEN", "LAMP_FAIL", "VACUUM_LOSS"}),
    State.UNLOADING: frozenset({"DOOR_OPEN"}),  # refuses the start only
}
ABORTED_BY_ALARM = (State.LOADING, State.EXPOSING, State.DEVELOPING)
