"""The typed values the cure oven's driver takes and returns (enums and frozen dataclasses).

The numbers are the CV-25 manual's: register values of the state, phase and command
registers and the alarm word's bits. How they sit in registers is :mod:`drivers.oven_map`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Flag, IntEnum

from .identity import Identity


class OvenState(IntEnum):
    IDLE = 0
    PURGING = 1
    RUNNING = 2
    PAUSED = 3
    COOLING = 4
    COMPLETE = 5
    ABORTED = 6


#: States in which a program runs (ABORT is accepted, the door lock cannot be released).
RUNNING_STATES = frozenset(
    {OvenState.PURGING, OvenState.RUNNING, OvenState.PAUSED, OvenState.COOLING}
)
#: States in which program registers may be written and START is accepted.
PROGRAMMABLE_STATES = frozenset({OvenState.IDLE, OvenState.COMPLETE, OvenState.ABORTED})


class SegmentPhase(IntEnum):
    RAMP = 0
    BAND = 1  # waiting for the chamber to come within ±3 °C of the target
    SOAK = 2
    NONE = 0xFFFF


class OvenAlarm(Flag):
    """Alarm word (input register 8), bits as in the manual."""

    OVER_TEMPERATURE = 1 << 0  # latched until ACK ALARMS with the cause gone
    DOOR_OPEN = 1 << 1
    O2_HIGH = 1 << 2
    N2_FLOW_LOW = 1 << 3
    SENSOR_BREAK = 1 << 4
    DEVIATION = 1 << 5

    @classmethod
    def from_word(cls, word: int) -> OvenAlarm:
        """Known bits only; a bit the manual does not name is ignored."""
        known = 0
        for member in cls:
            known |= member.value
        return cls(word & known)

    def names(self) -> tuple[str, ...]:
        """Alarm names in bit order, as ``alarms()`` returns them."""
        return tuple(m.name for m in type(self) if m in self and m.name)


class Command(IntEnum):
    """Values written to holding register 100 (always alone, FC 06)."""

    START = 1
    PAUSE = 2
    RESUME = 3
    ABORT = 4
    ACK_ALARMS = 5


OVEN_IDENTITY = Identity("VIAFAB", "CV-25", "", "")


@dataclass(frozen=True)
class Segment:
    target_c: float
    ramp_c_per_min: float
    soak_min: int


@dataclass(frozen=True)
class OvenProgram:
    segments: tuple[Segment, ...]
    o2_limit_ppm: int = 20
    n2_flow_slm: float = 50.0
    high_limit_c: float = 350.0
    unload_c: float = 100.0
    batch_no: int = 0


@dataclass(frozen=True)
class OvenReadings:
    """Input registers 0–15 from one request (FC 04): state, temperatures, O2, N2 and the
    alarm word, whose bits carry the door, O2, N2 and over-temperature alarms."""

    chamber_c: float
    setpoint_c: float
    heater_pct: float
    o2_ppm: int
    state: OvenState
    segment: int | None
    soak_left_s: int
    alarms: OvenAlarm
    n2_flow_slm: float
    batch_no: int
    wafer_c: float
    since_end_s: int
    phase: SegmentPhase


@dataclass(frozen=True)
class OvenStatus(OvenReadings):
    """One snapshot: input registers 0–15, discrete inputs 0–4 and coil 0 (three requests,
    under the link's lock)."""

    door_closed: bool
    door_locked: bool
    contactor_closed: bool
    high_limit_tripped: bool
    cassette_present: bool
    lock_requested: bool = field(default=False)  # coil 0 as last written (not in the contract)
