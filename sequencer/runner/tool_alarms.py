"""Every alarm and interlock of the three manuals, as data: its class and what it does.

- **SAFETY** — over-temperature / high-limit trip, sensor break, door open during
  process, RF reflected, gas fault, vacuum loss. The tool is HELD: no new work,
  E10 UNSCHEDULED_DOWN, an alarm in viaform's list, until a person acknowledges it.
- **PROCESS** — lamp failure, shutter, alignment, pump fault, the oven's O2/N2
  alarms. The wafer is aborted or held as the step decides, and the tool is HELD.
- **WARNING** — lamp low, the oven's deviation (reported only). Logged and shown;
  the tool carries on.

viaform never clears or acknowledges a tool's alarm on its own: only after a person
acknowledged viaform's alarm for it (``viaform alarms --ack ID``). The one exception is
the ALARM state that viaform's own ABORT causes, as the manuals say it does.

A name the table does not know is SAFETY: an alarm nobody classified is not waved on.
The ``+2xx``/``+3xx`` error codes are classed too, for a refusal the tool explains
only by its code (e.g. +203 alignment failed has no ``ALARm?`` name).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AlarmClass(StrEnum):
    SAFETY = "safety"
    PROCESS = "process"
    WARNING = "warning"


@dataclass(frozen=True)
class ToolAlarmSpec:
    """One row of a tool's alarm table."""

    cls: AlarmClass
    does: str  # what the tool does when it happens (the manual's words, short)
    action: str  # what a technician does before acknowledging it in viaform


S, P, W = AlarmClass.SAFETY, AlarmClass.PROCESS, AlarmClass.WARNING

#: tool → alarm name (as ``alarms()`` returns it) → its row
TABLE: dict[str, dict[str, ToolAlarmSpec]] = {
    "exposure": {
        "DOOR_OPEN": ToolAlarmSpec(S, "shutter closed, job aborted, ALARM (+201)",
                                   "close the door; check the wafer on the chuck"),
        "VACUUM_LOSS": ToolAlarmSpec(S, "shutter closed, job aborted, ALARM (+201)",
                                     "check the chuck vacuum and the wafer's seating"),
        "LAMP_FAIL": ToolAlarmSpec(P, "shutter closed, job aborted, ALARM (+202)",
                                   "replace or restart the lamp; check intensity"),
        "SHUTTER_FAULT": ToolAlarmSpec(P, "exposure aborted, ALARM (+202)",
                                       "service the shutter"),
        "LAMP_LOW": ToolAlarmSpec(W, "warning only: work goes on",
                                  "plan a lamp change"),
        "+201": ToolAlarmSpec(S, "interlock open", "close the interlock"),
        "+202": ToolAlarmSpec(P, "lamp fault", "service the lamp"),
        "+203": ToolAlarmSpec(P, "alignment failed, ALARM", "check the wafer's marks and "
                                                            "the aligner"),
    },
    "etcher": {
        "DOOR_OPEN": ToolAlarmSpec(S, "RF and gas off, job aborted, ALARM (+301)",
                                   "close the door / load lock"),
        "VACUUM_LOSS": ToolAlarmSpec(S, "RF and gas off, job aborted, ALARM (+302)",
                                     "check the chamber for a leak"),
        "RF_REFLECTED": ToolAlarmSpec(S, "RF and gas off, job aborted, ALARM (+303)",
                                      "check the matching network and RF cabling"),
        "GAS_FAULT": ToolAlarmSpec(S, "RF and gas off, job aborted, ALARM (+304)",
                                   "check the gas supply and mass-flow controllers"),
        "PUMP_FAULT": ToolAlarmSpec(P, "job aborted, ALARM (+302)", "service the dry pump"),
        "+301": ToolAlarmSpec(S, "interlock open", "close the interlock"),
        "+302": ToolAlarmSpec(P, "pressure fault", "check pump and throttle valve"),
        "+303": ToolAlarmSpec(S, "RF fault", "check the RF generator and match"),
        "+304": ToolAlarmSpec(S, "gas fault", "check the gas supply"),
    },
    "oven": {
        "OVER_TEMPERATURE": ToolAlarmSpec(S, "high-limit trip: heaters off, ABORTED, latched",
                                          "find why the chamber overheated (heater stuck "
                                          "on?) before acknowledging"),
        "SENSOR_BREAK": ToolAlarmSpec(S, "heaters off, program aborted",
                                      "replace the chamber thermocouple"),
        "DOOR_OPEN": ToolAlarmSpec(S, "door open while a program runs: heaters off, ABORTED",
                                   "close the door; check the cassette"),
        "O2_HIGH": ToolAlarmSpec(P, "purge did not reach the O2 limit: program aborted",
                                 "check the nitrogen supply and the door seal"),
        "N2_FLOW_LOW": ToolAlarmSpec(P, "nitrogen below 50 % of setpoint for 30 s",
                                     "check the nitrogen supply"),
        "DEVIATION": ToolAlarmSpec(W, "chamber > 15 °C off setpoint for 60 s in soak: "
                                      "reported, not fatal", "watch the batch's profile"),
    },
}

#: held by viaform itself, whatever the tool: a reboot mid-step, a step that failed unexpectedly
for _tool in TABLE.values():
    _tool["REBOOTED"] = ToolAlarmSpec(S, "power cycle mid-step: state and job records lost",
                                      "take the wafer off by hand; check the tool")
    _tool["STEP_FAILED"] = ToolAlarmSpec(S, "a step ended on an error no rule expected",
                                         "read the reason and the log; check the tool")

_UNKNOWN = ToolAlarmSpec(S, "not in the manual's table", "ask the tool's engineer")


def spec(tool: str, name: str) -> ToolAlarmSpec:
    """The row for ``name`` on ``tool`` (SAFETY if the table does not know it)."""
    return TABLE.get(tool, {}).get(str(name), _UNKNOWN)


def classify(tool: str, name: str) -> AlarmClass:
    return spec(tool, name).cls


def holding(tool: str, names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The alarms among ``names`` that hold the tool for a person (all but warnings)."""
    return tuple(str(n) for n in names if classify(tool, str(n)) is not AlarmClass.WARNING)


def describe(tool: str, names: tuple[str, ...] | list[str]) -> str:
    """``RF_REFLECTED (safety: check the matching network …)`` for each alarm, joined."""
    return "; ".join(f"{n} ({spec(tool, n).cls}: {spec(tool, n).action})" for n in names)
