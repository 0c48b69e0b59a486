"""LX-365 physics and timings: lamp, contrast curve, develop outcome, CD, durations.

Pure functions and small dataclasses, no I/O and no clock: the simulator in
:mod:`simulators.exposure` decides *when* things happen, this module decides
*what* they do to the resin (PROCESS.md, "Models good enough for simulators").
Every choice the manual leaves open is written in `docs/sim-exposure.md`.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field

FIELDS = 52  # exposure fields per wafer (EXPosure:FIELds?)
RETICLES: dict[str, float] = {"VIA-200": 20.0, "VIA-150": 15.0}  # name -> nominal opening, um

# --- timings (tool seconds, nominal; the manual allows +-10 %) ---
LOAD_S = 20.0
UNLOAD_S = 15.0
MEASURE_S = 10.0
STEP_S = 0.25  # stepping per field
DURATION_JITTER = 0.10

# --- lamp ---
LAMP_NEW_MW_CM2 = 1000.0
LAMP_HALF_LIFE_H = 2000.0  # intensity halves every 2000 lamp hours
LAMP_HOURS_AT_POWER_ON = 10.0
LAMP_LOW_MW_CM2 = 800.0  # below this LAMP_LOW is raised on its own
LAMP_LOW_FAULT_FACTOR = 0.7  # the lamp_low fault: intensity drops to 70 %

# --- resin (PROCESS.md) ---
E0_PER_10UM = 400.0  # mJ/cm2 dose-to-clear for a 10 um film
GAMMA = 2.0
DARK_LOSS = 0.05  # fraction lost by unexposed resin in a standard develop
STANDARD_DEVELOP_S = 90.0  # the develop time the contrast curve is quoted for
DEVELOP_EXPONENT = 0.3  # E0 scales with (90 s / develop time) ** this
GAUGE_SIGMA_UM = 0.02  # film gauge / result measurement noise (1 sigma)
VIA_SIGMA = 0.04  # via-to-via clear-time scatter, fraction of the mean
VIA_EXTREME_Z = 3.5  # the worst of a few thousand vias sits ~3.5 sigma out
CD_DOSE_EXPONENT = 0.15  # CD grows as (dose / (0.8 E0)) ** this
CD_FOCUS_UM_PER_UM2 = 0.01  # defocus widens the top opening by 0.01 um per um^2
CD_SIGMA_UM = 0.1
MIN_DEPTH_FOR_CD_UM = 0.05  # shallower than this there is no opening to measure


def lamp_intensity(tool_s: float, lamp_low: bool) -> float:
    """Lamp intensity, mW/cm2, ``tool_s`` seconds after power-on (the lamp burns all the time)."""
    hours = LAMP_HOURS_AT_POWER_ON + tool_s / 3600.0
    value = LAMP_NEW_MW_CM2 * 0.5 ** (hours / LAMP_HALF_LIFE_H)
    return value * LAMP_LOW_FAULT_FACTOR if lamp_low else value


def jitter(rng: random.Random, nominal_s: float) -> float:
    """A duration within the manual's +-10 %."""
    return nominal_s * rng.uniform(1.0 - DURATION_JITTER, 1.0 + DURATION_JITTER)


def exposure_duration(rng: random.Random, dose: float, intensity: float) -> float:
    """Fields x (dose / intensity + stepping); only the stepping varies, the dose is metered."""
    return FIELDS * (dose / intensity) + jitter(rng, FIELDS * STEP_S)


def field_doses(
    dose: float, start: float, duration: float, shutter_s: float, t: float
) -> list[float]:
    """Dose each field has received by time ``t`` of an exposure running from ``start``.

    Each field takes ``duration / FIELDS``: stepping first, then the shutter
    is open for ``shutter_s`` (dose / intensity).
    """
    per_field = duration / FIELDS
    shutter = min(per_field, max(shutter_s, 1e-9))
    out = []
    for k in range(FIELDS):
        opened = start + (k + 1) * per_field - shutter
        out.append(dose * min(1.0, max(0.0, (t - opened) / shutter)))
    return out


def e0(film_um: float, develop_s: float) -> float:
    """Dose-to-clear: 400 mJ/cm2 per 10 um, lower for a longer develop."""
    base = E0_PER_10UM * film_um / 10.0
    return base * (STANDARD_DEVELOP_S / develop_s) ** DEVELOP_EXPONENT


def remaining_fraction(dose: float, clear_dose: float) -> float:
    """Positive-tone contrast curve: 1 below E_th, gamma*log10(E0/E) between, 0 above E0."""
    e_th = clear_dose * 10.0 ** (-1.0 / GAMMA)
    if dose <= e_th:
        return 1.0
    if dose >= clear_dose:
        return 0.0
    return GAMMA * math.log10(clear_dose / dose)


@dataclass
class WaferHistory:
    """What this tool has done to one physical wafer (the world keeps only the outcome)."""

    field_doses: list[float] = field(default_factory=lambda: [0.0] * FIELDS)
    develop_s: float = 0.0  # total puddle time so far
    reticle: str = "VIA-200"  # of the last exposure
    focus_um: float = 0.0
    last_dose: float = 0.0


@dataclass(frozen=True)
class DevelopOutcome:
    top_um: float
    residual_um: float  # mean over the vias
    spread_max: float  # worst via's residual / mean residual

    @property
    def depth_um(self) -> float:
        return max(0.0, self.top_um - self.residual_um)


def develop(film_um: float, history: WaferHistory, rng: random.Random) -> DevelopOutcome:
    """The resin after ``history.develop_s`` seconds of puddle develop in total.

    top = d0 * (1 - 5 % * t/90 s); residual per field = min(d0 * r(dose), top);
    the worst via adds the via-to-via scatter to the worst field.
    """
    if history.develop_s <= 0.0:
        return DevelopOutcome(film_um, film_um, 1.0)
    top = film_um * (1.0 - DARK_LOSS * history.develop_s / STANDARD_DEVELOP_S)
    clear = e0(film_um, history.develop_s)
    residuals = [min(film_um * remaining_fraction(d, clear), top) for d in history.field_doses]
    mean = sum(residuals) / len(residuals)
    if mean <= 1e-9:
        return DevelopOutcome(top, 0.0, 1.0)
    via = 1.0 + VIA_SIGMA * max(0.0, VIA_EXTREME_Z + 0.3 * rng.gauss(0.0, 1.0))
    return DevelopOutcome(top, mean, max(residuals) / mean * via)


def critical_dimension(
    history: WaferHistory, film_um: float, depth_um: float, rng: random.Random
) -> float:
    """Mean top opening, um: the reticle's nominal opening, wider with dose and defocus."""
    if depth_um < MIN_DEPTH_FOR_CD_UM or history.last_dose <= 0.0:
        return 0.0
    nominal = RETICLES[history.reticle]
    clear = e0(film_um, max(history.develop_s, 1.0))
    cd = nominal * (history.last_dose / (0.8 * clear)) ** CD_DOSE_EXPONENT
    cd += CD_FOCUS_UM_PER_UM2 * history.focus_um**2
    return max(0.0, cd + rng.gauss(0.0, CD_SIGMA_UM))


def measured(value: float, rng: random.Random, sigma: float = GAUGE_SIGMA_UM) -> float:
    """A gauge reading of ``value`` (never negative)."""
    return max(0.0, value + rng.gauss(0.0, sigma))


# --- the tool's operations and job records (what the simulator schedules) ---


class State(enum.StrEnum):
    IDLE = "IDLE"
    LOADING = "LOADING"
    READY = "READY"
    EXPOSING = "EXPOSING"
    EXPOSED = "EXPOSED"
    DEVELOPING = "DEVELOPING"
    MEASURING = "MEASURING"
    COMPLETE = "COMPLETE"
    UNLOADING = "UNLOADING"
    ALARM = "ALARM"


@dataclass
class Job:
    no: int
    wafer_id: str
    kind: str  # EXPOSE | DEVELOP
    dose: float
    status: str = "RUNNING"  # RUNNING | DONE | ABORTED
    ended_at: float | None = None


@dataclass
class Operation:
    """A running operation: its state, start and end (tool seconds)."""

    state: State
    start: float
    end: float
    shutter_s: float = 0.0  # exposure only: dose / intensity per field
