"""PE-200 physics: etch rate, via clearing, OES, pump-down, gas and pressure settling.

Everything here is closed form in tool time, so the simulator can jump any
number of tool seconds in one update (time_scale 2000 and a 10 ms tick = 20 s)
and still place every transition, the endpoint and every OES trace point
exactly. Figures are the engineering estimates of PROCESS.md; where it gives
none, the choice is documented in docs/sim-etcher.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

# ------------------------------------------------------------------ vacuum
P_ATM = 760_000.0  # mTorr
BASE = 50.0  # READY needs the chamber at or below this, mTorr
ULTIMATE = 5.0  # what the dry pump reaches with the throttle open, mTorr
LEAK_LIMITED = 400.0  # throttle open, pump running, with a vacuum leak, mTorr
LEAK_OFFSET = 150.0  # extra pressure a leak adds under throttle control, mTorr
CHAMBER_V = 25.0  # load lock + chamber, litres
PUMP_S = 8.0  # effective pumping speed, litres/s  (V/S = 3.125 s → ~30 s to 50 mTorr)
THROTTLE_TAU = 2.0  # s, throttle-valve pressure loop
MFC_TAU = 1.5  # s, mass-flow controllers
PUMP_OUT_TAU = 0.5  # s, process gas (< 2 Torr) pumped out through the fully open throttle
VENT_TAU = 5.0  # s, N2 vent of the load lock
RISE_TAU = 60.0  # s, rate of rise with the pump stopped
GAS_FAULT_FRACTION = 0.5  # a failed O2 MFC delivers this share of its setpoint
SETTLE_BAND = 0.05  # STABILIZING: pressure and flows within 5 %

# ------------------------------------------------------------------ etch
RATE_REF_NM_MIN = 500.0  # at 300 W, 200 mTorr, 10 % CF4
POWER_EXP = 0.7
PRESSURE_EXP = 0.2
UNCURED_FACTOR = 1.6  # degree_of_cure < 0.5 etches this much faster
WIRING_REF_NM_MIN = 40.0  # flow B: wiring etched at 300 W, 10 % CF4
CLEAR_SIGMA = 0.04  # clear-time spread across the wafer, fraction of the mean
OPEN_AREA = 0.12  # share of the etched area that is via bottoms (CO drop depth)
ENDPOINT_FRACTION = 0.95  # endpoint: CO has made 95 % of its drop since arming
CO_REF = 20_000.0  # counts at the reference rate
O_REF = 12_000.0  # counts at 300 W, pure O2
O_RISE = 1.5  # O line rises by O_RISE × the CO drop fraction
DARK = 20.0  # detector dark counts with the plasma off
TRACE_STEP = 2.0  # s between OES trace points
TRACE_MAX = 600


def cf4_fraction(o2: float, cf4: float) -> float:
    """CF4 / (O2 + CF4); 0 when both are 0."""
    total = o2 + cf4
    return 0.0 if total <= 0 else cf4 / total


def _cf4_curve(x: float) -> float:
    """Raw chemistry factor: a little CF4 frees O atoms (peak near 15 %), more F poisons."""
    return 0.6 + 0.5 * math.exp(-(((x - 0.15) / 0.08) ** 2))


def etch_rate_nm_min(
    power_w: float, pressure_mtorr: float, o2: float, cf4: float, degree_of_cure: float
) -> float:
    """Resin etch rate: 500 nm/min × (P/300)^0.7 × (p/200)^0.2 × CF4 curve (1.0 at 10 %)."""
    if o2 + cf4 <= 0:
        return 0.0
    rate = RATE_REF_NM_MIN
    rate *= (power_w / 300.0) ** POWER_EXP
    rate *= (pressure_mtorr / 200.0) ** PRESSURE_EXP
    rate *= _cf4_curve(cf4_fraction(o2, cf4)) / _cf4_curve(0.10)
    if degree_of_cure < 0.5:
        rate *= UNCURED_FACTOR
    return rate


def wiring_rate_nm_min(power_w: float, o2: float, cf4: float) -> float:
    """Flow B: the exposed wiring etches at 40 nm/min × (P/300)^0.7 × (0.5 + 5·CF4 fraction)."""
    if o2 + cf4 <= 0:
        return 0.0
    return WIRING_REF_NM_MIN * (power_w / 300.0) ** POWER_EXP * (0.5 + 5.0 * cf4_fraction(o2, cf4))


def pump_down_s(p1: float, p2: float = BASE, tau: float = CHAMBER_V / PUMP_S) -> float:
    """t = (V/S)·ln(p1/p2), against the ultimate pressure of the pump."""
    if p1 <= p2:
        return 0.0
    return tau * math.log((p1 - ULTIMATE) / (p2 - ULTIMATE))


class Exp1:
    """A first-order response: value(t) = target + (v0 − target)·e^(−(t − t0)/tau)."""

    def __init__(self, value: float, t: float = 0.0) -> None:
        self.v0, self.t0, self.target, self.tau = value, t, value, 1.0

    def value(self, t: float) -> float:
        dt = max(0.0, t - self.t0)
        return self.target + (self.v0 - self.target) * math.exp(-dt / self.tau)

    def retarget(self, t: float, target: float, tau: float) -> None:
        self.v0, self.t0, self.target, self.tau = self.value(t), t, target, max(tau, 1e-6)

    def set(self, t: float, value: float) -> None:
        self.v0, self.t0, self.target = value, t, value


@dataclass(frozen=True)
class ClearProfile:
    """How the via bottoms of one wafer clear as resin is removed.

    ``r0`` is the mean resin at the bottoms after shrink (um), before any etch;
    via i clears once the total removed reaches r0·s_i, s ~ N(1, 4 %) cut off
    at ``spread_max`` (the worst via). ``r0`` None: the wafer has no vias.
    """

    r0: float | None
    spread_max: float = 1.0
    sigma: float = CLEAR_SIGMA

    def _norm(self) -> float:
        return NormalDist().cdf((max(self.spread_max, 1.0) - 1.0) / self.sigma)

    def cleared(self, removed_um: float) -> float:
        """Fraction of vias open once ``removed_um`` in total has gone."""
        if self.r0 is None:
            return 0.0
        if self.r0 <= 0 or removed_um >= self.r0 * max(self.spread_max, 1.0) - 1e-12:
            return 1.0
        z = (removed_um / self.r0 - 1.0) / self.sigma
        return min(1.0, NormalDist().cdf(z) / self._norm())

    def removed_for(self, fraction: float) -> float | None:
        """Total removal at which ``fraction`` of the vias are open (None: never)."""
        if self.r0 is None or fraction > 1.0:
            return None
        if self.r0 <= 0:
            return 0.0
        if fraction >= 1.0:
            return self.r0 * max(self.spread_max, 1.0)
        p = min(max(fraction * self._norm(), 1e-12), 1 - 1e-12)
        return self.r0 * (1.0 + self.sigma * NormalDist().inv_cdf(p))


@dataclass
class EtchRun:
    """One RF-on period: what the OES sees and what the wafer loses, as functions of time."""

    rf_on: float  # tool time RF came on
    rate_um_s: float
    removed_before: float  # um removed at the bottoms by earlier etches
    profile: ClearProfile
    co0: float
    o0: float
    rf_off: float | None = None

    def removed(self, x: float) -> float:
        """um removed by this run after x seconds of RF."""
        return self.rate_um_s * max(0.0, x)

    def cleared(self, x: float) -> float:
        return self.profile.cleared(self.removed_before + self.removed(x))

    def co(self, x: float) -> float:
        return self.co0 * (1.0 - OPEN_AREA * self.cleared(x))

    def o(self, x: float) -> float:
        return self.o0 * (1.0 + O_RISE * OPEN_AREA * self.cleared(x))

    def endpoint(self, arm_x: float, limit_x: float) -> float | None:
        """RF seconds at which the monitor calls the endpoint, or None if not by ``limit_x``.

        The monitor arms at ``arm_x``; it calls the endpoint when the clearing since
        arming reaches ENDPOINT_FRACTION of the full CO drop.
        """
        if self.rate_um_s <= 0:
            return None
        needed = self.cleared(arm_x) + ENDPOINT_FRACTION
        total = self.profile.removed_for(needed)
        if total is None:
            return None
        x = max(arm_x, (total - self.removed_before) / self.rate_um_s)
        return x if x <= limit_x + 1e-9 else None

    def trace(self, until: float) -> list[float]:
        """CO every TRACE_STEP s from RF on up to ``until`` (tool time), the last TRACE_MAX."""
        end = until if self.rf_off is None else min(until, self.rf_off)
        n = int(math.floor((end - self.rf_on) / TRACE_STEP + 1e-9)) + 1
        first = max(0, n - TRACE_MAX)
        return [self.co(k * TRACE_STEP) for k in range(first, max(n, 0))]


def oes_levels(power_w: float, o2: float, cf4: float, rate_nm_min: float) -> tuple[float, float]:
    """(CO, O) counts before any via clears: CO follows the etch rate, O the O2 plasma."""
    co = CO_REF * rate_nm_min / RATE_REF_NM_MIN
    o = O_REF * (power_w / 300.0) ** POWER_EXP * (1.0 - cf4_fraction(o2, cf4))
    return co, o


@dataclass(frozen=True)
class Conditions:
    """What drives the chamber's pressure and flows at one moment."""

    vacuum: bool  # the chamber has been pumped (PUMPING .. COMPLETE, or an ALARM from there)
    venting: bool
    gas_on: bool  # STABILIZING, ETCHING, OVERETCH: MFCs at setpoint, throttle controlling
    door_open: bool = False
    leak: bool = False  # vacuum_loss
    pump_dead: bool = False  # pump_fault
    gas_fault: bool = False


class Chamber:
    """Pressure and the two flows as first-order responses, re-aimed when conditions change."""

    def __init__(self, t: float = 0.0) -> None:
        self.pressure = Exp1(P_ATM, t)
        self.o2 = Exp1(0.0, t)
        self.cf4 = Exp1(0.0, t)
        self.pump_tau = CHAMBER_V / PUMP_S

    def apply(self, t: float, c: Conditions, o2: float, cf4: float, p_set: float) -> None:
        if c.gas_on:
            self.o2.retarget(t, o2 * (GAS_FAULT_FRACTION if c.gas_fault else 1.0), MFC_TAU)
            self.cf4.retarget(t, cf4, MFC_TAU)
        else:  # the gas valves close at once
            self.o2.set(t, 0.0)
            self.cf4.set(t, 0.0)
        if c.door_open:
            target, tau = P_ATM, 0.5
        elif c.venting or not c.vacuum:
            target, tau = P_ATM, VENT_TAU
        elif c.pump_dead:
            target, tau = P_ATM, RISE_TAU
        elif c.gas_on and self.o2.target + self.cf4.target >= 1.0:
            target, tau = p_set + (LEAK_OFFSET if c.leak else 0.0), THROTTLE_TAU
        else:  # throttle open: roughing from air at V/S, process gas out in PUMP_OUT_TAU
            fast = self.pressure.value(t) < 2_000.0
            target = LEAK_LIMITED if c.leak else ULTIMATE
            tau = PUMP_OUT_TAU if fast else self.pump_tau
        self.pressure.retarget(t, target, tau)

    def pumped_out(self, t: float) -> None:
        """The process gas is gone (the tool reports COMPLETE only once it is): ≤ BASE now."""
        target, tau = self.pressure.target, self.pressure.tau
        self.pressure.set(t, min(self.pressure.value(t), 0.8 * BASE))
        self.pressure.retarget(t, target, tau)

    def settled(self, t: float, o2: float, cf4: float, p_set: float) -> tuple[bool, bool]:
        """(pressure within 5 % of setpoint, both flows within 5 % of theirs) at ``t``."""
        p_ok = abs(self.pressure.value(t) - p_set) <= SETTLE_BAND * p_set
        f_ok = all(
            abs(m.value(t) - s) <= SETTLE_BAND * s + 1e-6
            for m, s in ((self.o2, o2), (self.cf4, cf4))
        )
        return p_ok, f_ok

    def settle_time(
        self, t_from: float, t_to: float, o2: float, cf4: float, p_set: float, step: float = 0.05
    ) -> float | None:
        """First time in [t_from, t_to] when everything is settled (None: not by t_to)."""
        n = max(0, int(math.ceil((t_to - t_from) / step)))
        for k in range(n + 1):
            t = min(t_from + k * step, t_to)
            if all(self.settled(t, o2, cf4, p_set)):
                return t
        return None
