"""What the PE-200 manual fixes, as data: durations, limits, state groups, the alarm table.

Shared by the SCPI face (:mod:`simulators.etcher_scpi`) and the model
(:mod:`simulators.etcher`), with the record of one etch job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .etcher_model import EtchRun

IDN = "VIAFAB,PE-200,PE2-00417,2.1.0"
LOAD_S, STAB_S, STAB_LIMIT_S, VENT_S = 15.0, 10.0, 30.0, 30.0
JITTER = 0.05  # each duration is nominal × U(1 − 5 %, 1 + 5 %), inside the manual's ±10 %
REFL_NORMAL, REFL_FAULT, REFL_TAU = 0.015, 0.30, 0.25  # reflected / forward; ramp time constant
REFL_LIMIT, REFL_HOLD_S = 0.20, 5.0
CF4_MAX = 0.25

PENDING = ("LOADING", "PUMPING", "STABILIZING", "ETCHING", "OVERETCH", "VENTING")
JOB_STATES = ("STABILIZING", "ETCHING", "OVERETCH")
RF_STATES = ("ETCHING", "OVERETCH")
SETTABLE = ("IDLE", "READY", "COMPLETE")

#: alarm name → (the fault that causes it, the code it queues)
ALARMS: dict[str, tuple[str, int]] = {
    "DOOR_OPEN": ("door_open", 301),
    "VACUUM_LOSS": ("vacuum_loss", 302),
    "RF_REFLECTED": ("rf_reflected", 303),
    "GAS_FAULT": ("gas_fault", 304),
    "PUMP_FAULT": ("pump_fault", 302),
}


@dataclass
class Job:
    number: int
    label: str  # the id the host loaded the wafer as
    start: float
    status: str = "RUNNING"
    end: float | None = None
    run: EtchRun | None = None
    endpoint_x: float | None = None  # RF seconds to the OES endpoint, if found by ETCH:TIME
    history: list[str] = field(default_factory=list)
