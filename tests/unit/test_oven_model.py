"""The cure oven's physics (simulators.oven_model): no I/O, no clock."""

from __future__ import annotations

import math

import pytest

from simulators.oven_model import (
    AIR_O2_PPM,
    MAX_STEP_S,
    Inputs,
    OvenParams,
    OvenPhysics,
    Pid,
    alpha_max,
    cure_rate,
    cure_step,
    ramp_setpoint,
)

P = OvenParams()


def run(ph: OvenPhysics, seconds: float, inp: Inputs, dt: float = MAX_STEP_S) -> None:
    for _ in range(round(seconds / dt)):
        ph.step(dt, inp)


def test_cure_rate_is_0_2_per_min_at_250c_with_80_kj_activation() -> None:
    assert cure_rate(250.0) * 60 == pytest.approx(0.2)
    ratio = cure_rate(320.0) / cure_rate(250.0)
    expected = math.exp(80_000 / 8.314 * (1 / 523.15 - 1 / 593.15))
    assert ratio == pytest.approx(expected)


@pytest.mark.parametrize(
    ("temp", "amax"), [(25, 0.0), (120, 0.0), (210, 0.5), (300, 1.0), (350, 1.0)]
)
def test_alpha_max_rises_linearly_from_120_to_300c(temp: float, amax: float) -> None:
    assert alpha_max(temp) == pytest.approx(amax)


def test_cure_step_is_first_order_towards_alpha_max_and_never_reverses() -> None:
    a_max = alpha_max(250.0)
    alpha = cure_step(0.0, 250.0, 300.0)  # 5 min at k = 0.2 /min -> 1 - e^-1 of the way
    assert alpha == pytest.approx(a_max * (1 - math.exp(-1.0)))
    assert cure_step(0.9, 250.0, 3600.0) == 0.9  # above alpha_max(250): no change, no loss
    assert cure_step(0.0, 100.0, 3600.0) == 0.0  # below 120 C nothing happens


def test_setpoint_ramp_moves_at_rate_both_ways_and_stops_at_target() -> None:
    assert ramp_setpoint(100.0, 150.0, 0.1, 10.0) == pytest.approx(101.0)
    assert ramp_setpoint(149.5, 150.0, 0.1, 10.0) == 150.0
    assert ramp_setpoint(200.0, 150.0, 0.1, 10.0) == pytest.approx(199.0)


def test_pid_anti_windup_keeps_integral_bounded_and_recovers_at_once() -> None:
    pid = Pid(kp=0.04, ti_s=240.0)
    for _ in range(3600):  # an hour saturated at 100 % with a huge error
        assert pid.update(400.0, 25.0, 1.0) == 1.0
    assert 0.0 <= pid.integral <= 1.0
    # the error flips: a wound-up integrator would hold 100 % for a long time
    assert pid.update(100.0, 110.0, 1.0) < 1.0


def test_chamber_time_constant_is_15_min_and_wafers_lag_3_min() -> None:
    ph = OvenPhysics()
    on = Inputs(setpoint_c=None, contactor_closed=True, heater_stuck_on=True)
    run(ph, 900.0, on)
    rise = ph.chamber_c - P.ambient_c
    assert rise == pytest.approx(P.heater_gain_c * (1 - math.exp(-1)), rel=1e-6)
    ph2 = OvenPhysics(OvenParams(tau_chamber_s=1e15))  # chamber held at 200 C: the load lags
    ph2.chamber_c = 200.0
    run(ph2, 180.0, Inputs(setpoint_c=None, contactor_closed=False))
    assert ph2.wafer_c == pytest.approx(P.ambient_c + (200.0 - P.ambient_c) * (1 - math.exp(-1)))


def test_contactor_open_means_no_heat_even_with_a_stuck_heater() -> None:
    ph = OvenPhysics()
    run(ph, 600.0, Inputs(setpoint_c=300.0, contactor_closed=False, heater_stuck_on=True))
    assert ph.chamber_c == pytest.approx(P.ambient_c)


@pytest.mark.parametrize("dt", [0.25, MAX_STEP_S])
def test_pi_loop_tracks_a_ramp_and_settles_in_band_at_any_substep(dt: float) -> None:
    ph = OvenPhysics()
    sp, overshoot, worst = ph.chamber_c, 0.0, 0.0
    for _ in range(round(3600 / dt)):
        sp = ramp_setpoint(sp, 150.0, 5.0 / 60, dt)
        ph.step(dt, Inputs(setpoint_c=sp, contactor_closed=True, n2_on=True))
        worst = max(worst, abs(ph.chamber_c - sp))
        if sp == 150.0:
            overshoot = max(overshoot, ph.chamber_c - 150.0)
    assert worst < 15.0  # no deviation alarm in a normal ramp
    assert overshoot < 3.0
    assert ph.chamber_c == pytest.approx(150.0, abs=0.1)


def test_purge_follows_exponential_with_2_ppm_floor() -> None:
    ph = OvenPhysics(o2_ppm=AIR_O2_PPM)
    ph.n2_slm = 50.0  # flow already at setpoint: pure c0 * exp(-Q t / V) + leak
    inp = Inputs(setpoint_c=None, contactor_closed=False, n2_on=True, n2_setpoint_slm=50.0)
    run(ph, 120.0, inp, dt=0.5)
    floor = P.o2_floor_ppm + P.leak_ppm
    expected = floor + (AIR_O2_PPM - floor) * math.exp(-50.0 * 120.0 / (P.volume_l * 60.0))
    assert ph.o2_ppm == pytest.approx(expected, rel=1e-6)
    run(ph, 3 * 3600.0, inp)
    assert 2.0 <= ph.o2_ppm < 3.0


def test_leak_fault_keeps_o2_above_every_settable_limit() -> None:
    ph = OvenPhysics()
    run(ph, 3600.0, Inputs(setpoint_c=None, contactor_closed=False, n2_on=True, leak_fault=True))
    assert ph.o2_ppm > 1000.0


def test_nitrogen_supply_loss_and_open_door() -> None:
    ph = OvenPhysics(o2_ppm=5.0)
    run(ph, 60.0, Inputs(setpoint_c=None, contactor_closed=False, n2_on=True))
    assert ph.n2_slm == pytest.approx(50.0, rel=1e-3)
    no_supply = Inputs(setpoint_c=None, contactor_closed=False, n2_on=True, n2_supply_ok=False)
    run(ph, 60.0, no_supply)
    assert ph.n2_slm < 0.1 * 50.0
    run(ph, 60.0, Inputs(setpoint_c=None, contactor_closed=False, door_open=True))
    assert ph.o2_ppm > 0.9 * AIR_O2_PPM
