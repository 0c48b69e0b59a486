"""LX-365 simulator: alarms, interlocks and process faults, over a plain socket."""

from __future__ import annotations

import time

import pytest

from tests.hil import test_sim_exposure as base
from tests.hil.test_sim_exposure import Cell, Client, complete, exposed, loaded

cell = base.cell  # the fixture

pytestmark = pytest.mark.timeout(30)

INTERLOCKS = [("door_open", "DOOR_OPEN", 201), ("lamp_fail", "LAMP_FAIL", 202),
              ("vacuum_loss", "VACUUM_LOSS", 201)]  # fmt: skip


def _start(cell: Cell, c: Client, state: str) -> None:
    """Bring the cell into a long-running ``state`` (LOADING, EXPOSING or DEVELOPING)."""
    c.send("DEV:TIME 180;:EXP:DOSE 2000")
    if state == "LOADING":
        cell.place("W01")
        c.send("SYST:REM;:WAF:LOAD W01")
    elif state == "EXPOSING":
        loaded(cell, c)
        c.send("EXP:DOSE 2000;:EXP:STAR")
    else:
        exposed(cell, c)
        c.send("DEV:STAR")
    assert c.state() == state


@pytest.mark.parametrize("fault, alarm, code", INTERLOCKS)
@pytest.mark.parametrize("state", ["LOADING", "EXPOSING", "DEVELOPING"])
def test_interlock_during_operation_aborts_and_needs_unload(
    cell: Cell, state: str, fault: str, alarm: str, code: int
) -> None:
    c = cell.client()
    _start(cell, c, state)
    c.query("*ESR?")
    jobs_before = c.query("JOB:LAST?").split(",")[0]
    cell.fault(fault)
    assert c.query("SYST:STAT?;:ALARM?") == f"ALARM;{alarm}"
    assert c.query("*ESR?") == str(1 << 3)
    assert c.errors() == [code]
    assert c.query("*OPC?") == "1"  # nothing pending any more
    last = c.query("JOB:LAST?").split(",")
    if state == "LOADING":
        assert last[0] == jobs_before  # a load is no job
    else:
        assert last[2:4] == ["EXPOSE" if state == "EXPOSING" else "DEVELOP", "ABORTED"]
        assert int(last[5]) >= 0
    c.send("ALARM:CLEAR")  # the cause is still there
    assert c.query("ALARM?") == alarm
    cell.clear(fault)
    c.send("ALARM:CLEAR")
    assert c.query("ALARM?;:SYST:STAT?") == "NONE;ALARM"  # aborted: stays until UNLoad
    c.send("EXP:STAR;:DEV:STAR")
    assert c.errors() == [-221]
    c.send("WAF:UNL")
    assert c.query("*OPC?;:SYST:STAT?") == "1;IDLE"
    if state != "LOADING":
        w = cell.wafer("W01")
        assert any("aborted" in h["event"] for h in w["history"])
        assert w["exposures"] == 1


@pytest.mark.parametrize("fault, alarm, code", INTERLOCKS)
def test_alarm_on_a_resting_wafer_returns_to_its_state(
    cell: Cell, fault: str, alarm: str, code: int
) -> None:
    c = cell.client()
    exposed(cell, c)
    cell.fault(fault)
    assert c.query("SYST:STAT?;:ALARM?") == f"ALARM;{alarm}"
    assert c.errors() == [code]
    c.send("DEV:STAR")  # ALARM: starts fail
    assert c.errors() == [-221]
    cell.clear(fault)
    assert c.query("ALARM?") == alarm  # latched until cleared
    c.send("ALARM:CLEAR")
    assert c.query("SYST:STAT?;:ALARM?") == "EXPOSED;NONE"
    assert c.query("JOB:LAST?").split(",")[3] == "DONE"
    c.send("DEV:STAR")
    assert c.query("*OPC?;:SYST:STAT?") == "1;COMPLETE"


def test_alarm_without_a_wafer_clears_to_idle(cell: Cell) -> None:
    c = cell.client()
    cell.fault("door_open")
    assert c.query("SYST:STAT?") == "ALARM"
    cell.clear("door_open")
    c.send("ALARM:CLEAR")
    assert c.query("SYST:STAT?;:ALARM?") == "IDLE;NONE"
    assert c.errors() == [201]


def test_lamp_low_is_a_warning_only(cell: Cell) -> None:
    c = cell.client()
    loaded(cell, c)
    normal = float(c.query("EXP:INT?"))
    c.query("*ESR?")
    cell.fault("lamp_low")
    assert c.query("SYST:STAT?;:ALARM?") == "READY;LAMP_LOW"
    assert c.query("*ESR?;:SYST:ERR?") == '0;0,"No error"'
    low = float(c.query("EXP:INT?"))
    assert low < 0.8 * normal
    c.send("EXP:STAR")
    assert c.query("*OPC?;:SYST:STAT?") == "1;EXPOSED"
    assert c.query("JOB:LAST?").split(",")[3] == "DONE"
    c.send("ALARM:CLEAR")
    assert c.query("ALARM?") == "LAMP_LOW"  # cause still there
    cell.clear("lamp_low")
    c.send("ALARM:CLEAR")
    assert c.query("ALARM?;:EXP:INT?") == f"NONE;{normal:.1f}"


def test_lamp_low_lengthens_the_exposure(cell: Cell) -> None:
    c = cell.client()
    cell.fault("lamp_low")
    intensity = float(c.query("EXP:INT?"))
    loaded(cell, c)
    t0 = cell.now()
    c.send("EXP:DOSE 2000;:EXP:STAR")
    c.wait_state("EXPOSED")
    assert cell.now() - t0 >= 0.9 * 52 * (2000 / intensity + 0.25)


def test_shutter_fault_stops_an_exposure(cell: Cell) -> None:
    c = cell.client()
    _start(cell, c, "EXPOSING")
    cell.fault("shutter_fault")
    assert c.query("SYST:STAT?;:ALARM?") == "ALARM;SHUTTER_FAULT"
    assert c.query("JOB:LAST?").split(",")[3] == "ABORTED"
    assert c.errors() == [202]


def test_shutter_fault_does_not_stop_a_develop_but_ends_in_alarm(cell: Cell) -> None:
    c = cell.client()
    _start(cell, c, "DEVELOPING")
    cell.fault("shutter_fault")
    assert c.query("SYST:STAT?;:ALARM?") == "DEVELOPING;SHUTTER_FAULT"
    assert c.query("*OPC?;:SYST:STAT?") == "1;ALARM"
    assert c.query("JOB:LAST?").split(",")[2:4] == ["DEVELOP", "DONE"]
    cell.clear("shutter_fault")
    c.send("ALARM:CLEAR")
    assert c.query("SYST:STAT?") == "COMPLETE"
    assert c.query("RES:RES?") != ""


@pytest.mark.sim_time_scale(100)
def test_door_during_measuring_lets_the_measurement_finish(cell: Cell) -> None:
    c = cell.client()
    exposed(cell, c)
    c.send("DEV:TIME 30;:DEV:STAR")
    c.wait_state("MEASURING", timeout=5)
    cell.fault("door_open")
    assert c.query("SYST:STAT?;:ALARM?") == "MEASURING;DOOR_OPEN"
    assert c.query("*OPC?;:SYST:STAT?") == "1;ALARM"
    assert c.query("JOB:LAST?").split(",")[3] == "DONE"
    assert c.errors() == [201]
    cell.clear("door_open")
    c.send("ALARM:CLEAR")
    assert c.state() == "COMPLETE"


def test_alignment_failure_fails_the_next_load_only(cell: Cell) -> None:
    c = cell.client()
    cell.fault("alignment_fail")
    cell.place("W01")
    c.send("SYST:REM;:WAF:LOAD W01")
    assert c.query("*OPC?;:SYST:STAT?;:ALARM?") == "1;ALARM;NONE"
    assert c.errors() == [203]
    c.send("ALARM:CLEAR;:EXP:STAR")
    assert c.query("SYST:STAT?") == "ALARM"
    assert c.errors() == [-221]
    c.send("WAF:UNL;*WAI;:WAF:LOAD W01;*WAI")
    assert c.query("SYST:STAT?") == "READY"
    assert c.errors() == []


def test_door_open_after_rst_refuses_load_with_interlock_code(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    cell.fault("door_open")
    c.send("*RST")  # without a wafer: IDLE, the alarm stays listed
    assert c.query("SYST:STAT?;:ALARM?") == "IDLE;DOOR_OPEN"
    c.send("SYST:REM;:WAF:LOAD W01")
    assert c.errors() == [201, 201]  # the alarm's own +201, then the refused load
    assert c.query("SYST:STAT?;:WAF:ID?") == "IDLE;NONE"
    cell.clear("door_open")
    c.send("WAF:LOAD W01")
    assert c.query("*OPC?;:SYST:STAT?") == "1;READY"


def test_alarm_during_unloading_leaves_the_wafer_at_the_load_position(cell: Cell) -> None:
    c = cell.client()
    complete(cell, c)
    assert c.query("WAF:UNL;:SYST:STAT?") == "UNLOADING"
    cell.fault("vacuum_loss")
    assert c.query("*OPC?;:SYST:STAT?;:WAF:ID?") == "1;ALARM;NONE"
    cell.transfer("W01", "stocker")
    cell.clear("vacuum_loss")
    c.send("ALARM:CLEAR")
    assert c.query("SYST:STAT?") == "IDLE"


def test_unload_refused_with_interlock_code_while_the_door_is_open(cell: Cell) -> None:
    c = cell.client()
    loaded(cell, c)
    cell.fault("door_open")
    c.send("WAF:UNL")
    assert c.query("SYST:STAT?;:WAF:ID?") == "ALARM;W01"
    assert c.errors() == [201, 201]
    cell.clear("door_open")
    c.send("WAF:UNL")  # allowed from ALARM once the door is shut, even before ALARm:CLEar
    assert c.query("*OPC?;:SYST:STAT?;:ALARM?") == "1;IDLE;DOOR_OPEN"


@pytest.mark.sim_time_scale(100_000)
def test_intensity_falls_with_lamp_hours(cell: Cell) -> None:
    c = cell.client()
    first = float(c.query("EXP:INT?"))
    time.sleep(0.3)  # ~8 tool hours
    assert float(c.query("EXP:INT?")) <= first - 1.0
