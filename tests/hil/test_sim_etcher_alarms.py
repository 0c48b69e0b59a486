"""PE-200 simulator: alarms, interlocks, stabilisation failures, and tick-independent physics."""

from __future__ import annotations

import pytest

from .test_sim_etcher_support import Tcp, etcher, load_ready, run_etch, wafer, wait_for

pytestmark = pytest.mark.timeout(30)


def _inject(sims, name: str) -> None:
    sims.call(sims.faults["etcher"].inject, name)


def _clear(sims, name: str | None = None) -> None:
    sims.call(sims.faults["etcher"].clear, name)


def _start_etching(sims, c: Tcp) -> None:
    load_ready(sims, c)
    c.send("*CLS;:ETCH:TIME 300;:ETCH:STAR")
    wait_for(c, "ETCHING", 40, sims)


@pytest.mark.parametrize(
    ("fault", "alarm", "code"),
    [
        ("door_open", "DOOR_OPEN", 301),
        ("vacuum_loss", "VACUUM_LOSS", 302),
        ("gas_fault", "GAS_FAULT", 304),
        ("pump_fault", "PUMP_FAULT", 302),
        ("rf_reflected", "RF_REFLECTED", 303),
    ],
)
def test_alarm_while_rf_on_aborts_the_job(fault: str, alarm: str, code: int) -> None:
    with etcher(scale=200) as (sims, c):
        _start_etching(sims, c)
        _inject(sims, fault)
        wait_for(c, "ALARM", 20, sims)
        assert c.ask("ALAR?;:RF:FORW?;:GAS:FLOW?") == f"{alarm};0.0;0.0,0.0"
        assert c.ask("JOB:LAST?").startswith("1,W01,ABORTED,")
        assert int(c.ask("*ESR?")) & 8
        assert c.errors() == [code]
        assert c.ask("ALAR:CLE;:ALAR?") == alarm  # cause still there
        _clear(sims, fault)
        assert c.ask("ALAR:CLE;:ALAR?;:SYST:STAT?") == "NONE;ALARM"  # aborted: until unload
        c.send("WAF:UNL")
        wait_for(c, "IDLE", 60, sims)
        assert wafer(sims)["removed_um"] > 0  # what the plasma did before the abort stays


def test_rf_reflected_alarms_after_five_seconds_above_20_percent() -> None:
    with etcher(scale=100) as (sims, c):
        _start_etching(sims, c)
        _inject(sims, "rf_reflected")
        t0 = sims.clock.now()
        forward = float(c.ask("RF:FORW?"))
        while sims.clock.now() - t0 < 1.0:  # the ramp takes a fraction of a second
            pass
        assert c.ask("SYST:STAT?") == "ETCHING"
        assert float(c.ask("RF:REFL?")) > 0.2 * forward
        t_alarm = wait_for(c, "ALARM", 20, sims)
        assert 5.0 <= t_alarm - t0 <= 5.3 + 1.0
        assert c.errors() == [303]


def test_gas_fault_in_stabilizing_aborts_after_30_s_before_rf() -> None:
    with etcher(scale=100) as (sims, c):
        load_ready(sims, c)
        _inject(sims, "gas_fault")  # gas is off in READY: nothing to see yet
        assert c.ask("SYST:STAT?;:ALAR?") == "READY;NONE"
        t0 = sims.clock.now()
        c.send("ETCH:STAR")
        t1 = wait_for(c, "ALARM", 40, sims)
        assert 29.5 <= t1 - t0 <= 31.0
        assert c.ask("ALAR?;:JOB:LAST?").startswith("GAS_FAULT;1,W01,ABORTED")
        assert c.ask("ETCH:STAT?") == "ALARM,0,-1"  # RF never came on
        assert c.errors() == [304]


def test_no_gas_cannot_hold_pressure_302() -> None:
    with etcher(scale=500) as (sims, c):
        load_ready(sims, c)
        c.send("GAS:CF4 0;:GAS:O2 0;:ETCH:STAR")
        wait_for(c, "ALARM", 40, sims)
        assert c.ask("ALAR?") == "NONE"
        assert c.errors() == [302]
        assert c.ask("JOB:LAST?").startswith("1,W01,ABORTED")


def test_gas_fault_cleared_during_stabilizing_lets_the_etch_run() -> None:
    with etcher(scale=100) as (sims, c):
        load_ready(sims, c)
        _inject(sims, "gas_fault")
        t0 = sims.clock.now()
        c.send("ETCH:TIME 5;:ETCH:STAR")
        while sims.clock.now() - t0 < 15:
            assert c.ask("SYST:STAT?") == "STABILIZING"
        _clear(sims, "gas_fault")
        t1 = wait_for(c, "ETCHING", 20, sims)
        assert t1 - t0 < 25
        wait_for(c, "COMPLETE", 30, sims)
        assert c.errors() == []


def test_alarm_without_job_returns_to_state_before() -> None:
    with etcher(scale=500) as (sims, c):
        load_ready(sims, c)
        _inject(sims, "door_open")
        assert c.ask("SYST:STAT?;:ALAR?") == "ALARM;DOOR_OPEN"
        assert float(c.ask("PRES?")) > 1000  # vacuum gone
        _clear(sims)
        c.send("ALAR:CLE")
        wait_for(c, "READY", 60, sims)  # pumped down again first
        assert c.errors() == [301]
        _inject(sims, "pump_fault")
        c.send("WAF:UNL")  # unloading is allowed from ALARM
        wait_for(c, "ALARM", 60, sims)  # vented, no wafer, PUMP_FAULT still latched
        assert c.ask("WAF:ID?;:ALAR?") == "NONE;PUMP_FAULT"
        _clear(sims)
        assert c.ask("ALAR:CLE;:SYST:STAT?") == "IDLE"


def test_endpoint_and_trace_do_not_depend_on_the_tick() -> None:
    """At 2000 tool s per wall s one tick spans ~20 tool s; results match a slow run."""
    results = []
    for scale in (150.0, 2000.0):
        with etcher(scale=scale) as (sims, c):
            load_ready(sims, c, residual_pre_cure=1.2, spread_max=1.1)
            c.send("ETCH:ENDP 1;:ETCH:TIME 300")
            status = run_etch(sims, c)
            results.append((status, c.ask("OES:TRAC?"), c.ask("RES:REM?")))
    assert results[0] == results[1]
    assert results[0][0].split(",")[2] != "-1"
