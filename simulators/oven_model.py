"""Physics of the CV-25 cure oven: chamber heat, wafer lag, PID, nitrogen, oxygen, cure.

Pure functions and small state holders, no I/O and no clock: the caller
(:class:`simulators.oven.OvenSim`) advances them in fixed sim-time substeps
(``MAX_STEP_S``). Every integrator here is an exact exponential step for the
inputs held constant over the substep, so the model stays stable however large
``time_scale`` makes one wall tick; only the discrete PI loop bounds the step
(loop factor ~0.93 per 2 s step with the gains below).

Figures are the engineering estimates of PROCESS.md: chamber tau 15 min,
wafers lag the chamber with tau 3 min, O2 purge c(t) = c0 * exp(-Q t / V) + leak
with a 2 ppm floor, cure rate k(250 C) = 0.2 /min with E = 80 kJ/mol and an
alpha_max ramping 0 -> 1 between 120 C and 300 C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_STEP_S = 2.0  #: largest substep of sim time the caller may integrate at once
R_GAS = 8.314  #: J/(mol K)
AIR_O2_PPM = 209_000.0


@dataclass(frozen=True)
class OvenParams:
    """Plant constants (est.). Temperatures in C, times in s, flows in slm, volume in L."""

    ambient_c: float = 22.0
    tau_chamber_s: float = 900.0  # R*C of the chamber
    heater_gain_c: float = 600.0  # steady rise above ambient at 100 % heater output
    tau_wafer_s: float = 180.0  # wafers (load) lag the chamber
    kp: float = 0.04  # PI proportional gain, output fraction per C
    ti_s: float = 240.0  # PI integral time
    volume_l: float = 80.0  # chamber gas volume (purge tau = V/Q = 1.6 min at 50 slm)
    o2_floor_ppm: float = 2.0  # purge floor
    leak_ppm: float = 0.5  # tight-door leak, on top of the floor
    fault_leak_ppm: float = 5_000.0  # o2_purge_fail: above every settable limit (max 1000)
    ingress_tau_s: float = 3_600.0  # door closed, no nitrogen: air creeps back in
    door_open_tau_s: float = 10.0  # door open: chamber fills with air
    n2_tau_s: float = 5.0  # mass-flow controller response
    n2_fault_fraction: float = 0.0  # n2_flow_low: supply pressure lost, no flow
    # cure kinetics
    k_ref_per_s: float = 0.2 / 60.0  # at 250 C
    t_ref_c: float = 250.0
    activation_j_mol: float = 80_000.0
    alpha_zero_c: float = 120.0
    alpha_full_c: float = 300.0


DEFAULT_PARAMS = OvenParams()


def _relax(x: float, target: float, dt: float, tau: float) -> float:
    """Exact first-order step of x towards target over dt with time constant tau."""
    if tau <= 0:
        return target
    return target + (x - target) * math.exp(-dt / tau)


def ramp_setpoint(sp: float, target: float, rate_c_per_s: float, dt: float) -> float:
    """Move the working setpoint towards target at rate (either direction), never past it."""
    step = rate_c_per_s * dt
    if sp < target:
        return min(target, sp + step)
    return max(target, sp - step)


def alpha_max(temp_c: float, p: OvenParams = DEFAULT_PARAMS) -> float:
    """Highest degree of cure reachable at this temperature (linear 120 C -> 300 C)."""
    frac = (temp_c - p.alpha_zero_c) / (p.alpha_full_c - p.alpha_zero_c)
    return min(1.0, max(0.0, frac))


def cure_rate(temp_c: float, p: OvenParams = DEFAULT_PARAMS) -> float:
    """Arrhenius rate constant k(T) in 1/s; k(250 C) = 0.2 /min."""
    t_k = temp_c + 273.15
    t_ref = p.t_ref_c + 273.15
    return p.k_ref_per_s * math.exp(-p.activation_j_mol / R_GAS * (1.0 / t_k - 1.0 / t_ref))


def cure_step(alpha: float, temp_c: float, dt: float, p: OvenParams = DEFAULT_PARAMS) -> float:
    """Advance d(alpha)/dt = k(T) * max(0, alpha_max(T) - alpha) exactly over dt (T constant)."""
    a_max = alpha_max(temp_c, p)
    if alpha >= a_max:
        return alpha
    return a_max - (a_max - alpha) * math.exp(-cure_rate(temp_c, p) * dt)


@dataclass
class Pid:
    """PI controller with conditional-integration anti-windup; output 0..1.

    The integral freezes while the output is saturated and the error would push
    it further into saturation, and is clamped to the output range, so a long
    ramp or a heater cut-off does not wind it up into a big overshoot.
    """

    kp: float
    ti_s: float
    integral: float = 0.0  # in output units

    def reset(self) -> None:
        self.integral = 0.0

    def update(self, sp: float, pv: float, dt: float) -> float:
        err = sp - pv
        raw = self.kp * err + self.integral
        saturating = (raw >= 1.0 and err > 0) or (raw <= 0.0 and err < 0)
        if not saturating:
            self.integral += self.kp * err * dt / self.ti_s
            self.integral = min(1.0, max(0.0, self.integral))
        return min(1.0, max(0.0, self.kp * err + self.integral))


@dataclass
class Inputs:
    """What the controller and the faults decide for one substep."""

    setpoint_c: float | None  # None: control loop off (heater output 0)
    contactor_closed: bool  # heater power available (high limit not tripped, program heating)
    heater_stuck_on: bool = False  # over_temperature fault: SSR welded, full power if contactor on
    n2_on: bool = False
    n2_setpoint_slm: float = 50.0
    n2_supply_ok: bool = True
    door_open: bool = False
    leak_fault: bool = False


@dataclass
class OvenPhysics:
    """State of the plant: chamber, load, gases, heater output."""

    p: OvenParams = field(default_factory=OvenParams)
    chamber_c: float = 22.0
    wafer_c: float = 22.0
    o2_ppm: float = AIR_O2_PPM
    n2_slm: float = 0.0
    heater_out: float = 0.0  # 0..1, the controller's output (what register 2 shows)
    pid: Pid = field(init=False)

    def __post_init__(self) -> None:
        self.pid = Pid(self.p.kp, self.p.ti_s)
        self.chamber_c = self.wafer_c = self.p.ambient_c

    def step(self, dt: float, inp: Inputs) -> None:
        """Advance the plant by dt seconds (dt <= MAX_STEP_S) with inputs held constant."""
        p = self.p
        if inp.setpoint_c is None:
            self.heater_out = 0.0
            self.pid.reset()
        else:
            self.heater_out = self.pid.update(inp.setpoint_c, self.chamber_c, dt)
        power = 1.0 if inp.heater_stuck_on else self.heater_out
        if not inp.contactor_closed:
            power = 0.0
        t_ss = p.ambient_c + p.heater_gain_c * power
        self.chamber_c = _relax(self.chamber_c, t_ss, dt, p.tau_chamber_s)
        self.wafer_c = _relax(self.wafer_c, self.chamber_c, dt, p.tau_wafer_s)
        self._gases(dt, inp)

    def _gases(self, dt: float, inp: Inputs) -> None:
        p = self.p
        n2_target = inp.n2_setpoint_slm if inp.n2_on else 0.0
        if not inp.n2_supply_ok:
            n2_target *= p.n2_fault_fraction
        self.n2_slm = _relax(self.n2_slm, n2_target, dt, p.n2_tau_s)
        if inp.door_open:
            self.o2_ppm = _relax(self.o2_ppm, AIR_O2_PPM, dt, p.door_open_tau_s)
            return
        leak = p.fault_leak_ppm if inp.leak_fault else p.leak_ppm
        floor = p.o2_floor_ppm + leak
        if self.n2_slm > 0.1:
            # c(t) = c_inf + (c0 - c_inf) * exp(-Q t / V): the purge formula, stepwise
            tau = p.volume_l / self.n2_slm * 60.0
            self.o2_ppm = _relax(self.o2_ppm, floor, dt, tau)
        else:
            self.o2_ppm = _relax(self.o2_ppm, AIR_O2_PPM, dt, p.ingress_tau_s)
        self.o2_ppm = max(p.o2_floor_ppm, self.o2_ppm)
