"""PlasmaEtcher against the PE-200 simulator over its real transports: TCP (pyserial
``socket://``) and the pseudo-terminal (a serial port as far as pyserial can tell).

Material handling exists only in the simulated world, so the tests that load wafers
need the bundled simulators.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivers.errors import CommsError, InterlockError, ToolRejected, ValidationError
from drivers.etcher import EtcherState, PlasmaEtcher
from drivers.scpi import JobStatus

pytestmark = [pytest.mark.sim_tools("etcher"), pytest.mark.timeout(60)]
S = EtcherState
FAST_TIMEOUT_S = 0.5  # driver timeout in the comms-fault tests (a shared CI host can stall 0.3 s)
RECIPE = dict(o2=90.0, cf4=10.0, pressure=200.0, rf_power=300.0, etch_time=60, overetch=30,
              endpoint=False, target=0.0)


def wait_for(read: Callable[[], Any], *wanted: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while (value := read()) not in wanted:
        assert time.monotonic() < deadline, f"still {value!r}, waiting for {wanted}"
        time.sleep(0.005)
    return value


def config(tools_cfg: dict[str, Any], link: str, **overrides: Any) -> dict[str, Any]:
    """The etcher's mapping, over TCP (``tcp``) or the simulator's pty (``pty``)."""
    entry = dict(tools_cfg["etcher"], **overrides)
    if link == "pty":
        if not entry.get("pty"):
            pytest.skip("no pty endpoint (real tool)")
        entry["url"] = entry["pty"]
    return entry


@pytest.fixture(params=["tcp", "pty"])
def tool(request: pytest.FixtureRequest, tools_cfg: dict[str, Any]) -> Iterator[PlasmaEtcher]:
    with PlasmaEtcher.from_config(config(tools_cfg, request.param)) as driver:
        yield driver


def loaded(tool: PlasmaEtcher, sims: Any, wafer: str) -> None:
    if sims is None:
        pytest.skip("loading needs the simulated material handling")
    sims.call(sims.world.add_wafers, [wafer])
    sims.call(sims.world.transfer, [wafer], "etcher")
    tool.load(wafer)
    wait_for(tool.state, S.READY)


# ------------------------------------------------------------------- plain methods
def test_identity_status_readings(tool: PlasmaEtcher) -> None:
    assert tool.idn().model == "PE-200"
    status = tool.status()
    assert status.state is tool.state() and status.boot_id == tool.boot_id()
    assert set(status.settings) == set(PlasmaEtcher.settings)
    readings = tool.readings()
    assert readings.pressure_mtorr > 0 and readings.rf_forward_w == 0.0
    assert tool.etch_status().state in set(S) | {None}
    assert isinstance(tool.oes_trace(), list)
    assert tool.result().removed_um >= 0
    assert tool.alarms() == () and tool.errors() == []


def test_apply_recipe_both_ways_never_trips_the_cf4_rule(tool: PlasmaEtcher) -> None:
    tool.apply_recipe(**RECIPE)
    tool.apply_recipe(**{**RECIPE, "o2": 90.0, "cf4": 30.0})  # CF4 up: O2 first
    tool.apply_recipe(**{**RECIPE, "o2": 15.0, "cf4": 5.0})   # CF4 down: CF4 first
    tool.apply_recipe(**{**RECIPE, "o2": 0.0, "cf4": 0.0, "endpoint": True, "target": 4.5})
    settings = tool.status().settings
    assert (settings["o2"], settings["cf4"], settings["endpoint"], settings["target"]) == (
        0.0, 0.0, True, 4.5)
    assert tool.errors() == []


def test_settings_round_trip_and_invalid_values_are_refused_before_sending(
        tool: PlasmaEtcher) -> None:
    tool.apply_recipe(**RECIPE)
    tool.pressure = 350.0
    tool.set("etch_time", 240)
    tool.endpoint = True
    assert (tool.pressure, tool.get("etch_time"), tool.endpoint) == (350.0, 240, True)
    for name, bad in [("pressure", 10.0), ("cf4", 31.0), ("overetch", 101), ("endpoint", 2)]:
        with pytest.raises(ValidationError):
            tool.set(name, bad)
    with pytest.raises(ValidationError):
        tool.set("cf4", 30.0)  # 30 / (90 + 30) = 25 % is fine ...
        tool.set("o2", 50.0)   # ... 30 / 80 is not
    assert tool.errors() == []


@pytest.mark.sim_time_scale(2000)
def test_full_cycle_load_etch_result_unload(tool: PlasmaEtcher, sims: Any) -> None:
    wafer = f"W-{tool.transport.target[-2:].replace('/', '')}"
    tool.apply_recipe(**{**RECIPE, "endpoint": True, "target": 1.0})
    with pytest.raises(ToolRejected) as err:
        tool.start_etch()  # not READY
    assert err.value.code == -221
    loaded(tool, sims, wafer)
    assert tool.wafer_id() == wafer
    tool.start_etch()
    assert tool.last_job().status is JobStatus.RUNNING
    wait_for(tool.state, S.COMPLETE)
    line = tool.etch_status()
    assert line.state is S.COMPLETE and line.elapsed_s > 0
    job = tool.last_job()
    assert (job.wafer_id, job.status) == (wafer, JobStatus.DONE)
    assert tool.job_count(wafer) == 1
    assert tool.result().removed_um > 0 and len(tool.oes_trace()) > 0
    tool.unload()
    wait_for(tool.state, S.IDLE)
    assert tool.wafer_id() is None and tool.errors() == []


# ------------------------------------------------------------------- comms faults
@pytest.mark.fault
@pytest.mark.parametrize("link", ["tcp", "pty"])
@pytest.mark.parametrize("fault", ["mute", "garble", "slow"])
def test_comms_fault_is_a_prompt_comms_error_and_clears(link: str, fault: str,
                                                         fault_sims: Any,
                                                         tools_cfg: dict[str, Any]) -> None:
    faults = fault_sims.faults["etcher"]
    with PlasmaEtcher.from_config(config(tools_cfg, link, timeout_s=FAST_TIMEOUT_S)) as tool:
        fault_sims.call(faults.inject, fault, delay_s=1.0)
        for call in (tool.state, lambda: tool.set("pressure", 210.0), tool.readings):
            start = time.monotonic()
            with pytest.raises(CommsError):
                call()
            assert time.monotonic() - start < 2 * FAST_TIMEOUT_S + 0.3
        fault_sims.call(faults.clear, fault)
        time.sleep(1.1 if fault == "slow" else 0.0)  # let a delayed reply drain
        assert tool.state() in set(S)
        tool.pressure = 210.0
        assert tool.pressure == 210.0


@pytest.mark.fault
def test_a_dropped_tcp_connection_is_reopened_on_the_next_call(
        fault_sims: Any, tools_cfg: dict[str, Any]) -> None:
    with PlasmaEtcher.from_config(config(tools_cfg, "tcp", timeout_s=FAST_TIMEOUT_S)) as tool:
        fault_sims.call(fault_sims.faults["etcher"].inject, "drop")
        time.sleep(0.05)
        assert tool.state() in set(S)
        fault_sims.call(fault_sims.faults["etcher"].inject, "drop")
        time.sleep(0.05)
        tool.pressure = 220.0  # a command after a drop goes out once, on a new connection
        assert tool.pressure == 220.0 and tool.transport.connects == 3


# ------------------------------------------------------------------- process faults
@pytest.mark.fault
@pytest.mark.sim_time_scale(50)
def test_door_open_refuses_the_start_with_an_interlock_error(fault_sims: Any,
                                                            tool: PlasmaEtcher) -> None:
    loaded(tool, fault_sims, "W-DOOR")
    fault_sims.call(fault_sims.faults["etcher"].inject, "door_open")
    with pytest.raises(InterlockError) as err:
        tool.start_etch()
    assert err.value.code == 301
    assert "DOOR_OPEN" in tool.alarms() and tool.state() is S.ALARM
    assert tool.last_job().job_no == 0  # a refused start makes no job
    fault_sims.call(fault_sims.faults["etcher"].clear, "door_open")
    tool.clear_alarms()
    assert tool.alarms() == ()


@pytest.mark.fault
@pytest.mark.sim_time_scale(50)
def test_rf_reflected_during_etch_aborts_and_is_reported(fault_sims: Any,
                                                         tool: PlasmaEtcher) -> None:
    tool.apply_recipe(**{**RECIPE, "etch_time": 600})
    loaded(tool, fault_sims, "W-RF")
    tool.start_etch()
    wait_for(tool.state, S.ETCHING)
    fault_sims.call(fault_sims.faults["etcher"].inject, "rf_reflected")
    wait_for(tool.state, S.ALARM)
    assert "RF_REFLECTED" in tool.alarms()
    assert tool.last_job().status is JobStatus.ABORTED
    assert tool.readings().rf_forward_w == 0.0  # RF off at once
    assert 303 in [code for code, _ in tool.errors()]
    with pytest.raises(ToolRejected):
        tool.start_etch()
    fault_sims.call(fault_sims.faults["etcher"].clear, "rf_reflected")
    tool.clear_alarms()
    assert tool.state() is S.ALARM  # an aborted job stays in ALARM until unload
    tool.unload()
    wait_for(tool.state, S.IDLE)
