"""ExposureTool against the LX-365 simulator over its real transport (pyvisa-py, TCP SOCKET).

Material handling (putting a wafer at the load position) exists only in the simulated
world, so the tests that load wafers need the bundled simulators.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivers.errors import CommsError, ToolRejected, ValidationError
from drivers.exposure import Control, ExposureState, ExposureTool
from drivers.scpi import JobStatus

pytestmark = [pytest.mark.sim_tools("exposure"), pytest.mark.timeout(60)]
S = ExposureState
FAST_TIMEOUT_S = 0.5  # driver timeout in the comms-fault tests (a shared CI host can stall 0.3 s)


def wait_for(read: Callable[[], Any], *wanted: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while (value := read()) not in wanted:
        assert time.monotonic() < deadline, f"still {value!r}, waiting for {wanted}"
        time.sleep(0.005)
    return value


@pytest.fixture
def tool(tools_cfg: dict[str, dict[str, Any]]) -> Iterator[ExposureTool]:
    with ExposureTool.from_config(tools_cfg["exposure"]) as driver:
        yield driver


def place(sims: Any, wafer: str) -> None:
    """Put a coated wafer at the exposure cell's load position (simulated handling)."""
    if sims is None:
        pytest.skip("loading needs the simulated material handling")
    sims.call(sims.world.add_wafers, [wafer])
    sims.call(sims.world.transfer, [wafer], "exposure")


def loaded(tool: ExposureTool, sims: Any, wafer: str = "W-01") -> None:
    place(sims, wafer)
    tool.remote()
    tool.load(wafer)
    wait_for(tool.state, S.READY)


# ------------------------------------------------------------------- plain methods
def test_identity_status_and_read_only_settings(tool: ExposureTool) -> None:
    ident = tool.idn()
    assert (ident.maker, ident.model) == ("VIAFAB", "LX-365")
    status = tool.status()
    assert isinstance(status.state, ExposureState) and isinstance(status.control, Control)
    assert status.boot_id == tool.boot_id()
    assert tool.fields == 52 and tool.get("fields") == 52
    assert tool.intensity > 0 and tool.film_um() == tool.film
    assert "VIA-200" in tool.reticles()
    assert tool.errors() == []


def test_settings_round_trip_and_out_of_range_is_refused_before_sending(
        tool: ExposureTool) -> None:
    tool.dose = 455.5
    tool.set("focus", -2.5)
    tool.develop_time = 120
    other = [r for r in tool.reticles() if r != tool.reticle][0]
    tool.reticle = other
    status = tool.status()
    assert (status.dose, status.focus, status.develop_time_s, status.reticle) == (
        455.5, -2.5, 120, other)
    for name, bad in [("dose", 2500.0), ("focus", 11), ("develop_time", 200),
                      ("reticle", "NO-SUCH-MASK")]:
        with pytest.raises(ValidationError):
            tool.set(name, bad)
    assert tool.errors() == []  # nothing reached the tool
    assert tool.dose == 455.5


def test_control_state_and_local_refuses_starts(tool: ExposureTool, sims: Any) -> None:
    place(sims, "W-LOC")
    tool.local()
    assert tool.control() is Control.LOCAL
    with pytest.raises(ToolRejected) as err:
        tool.load("W-LOC")
    assert err.value.code == -221
    tool.remote()
    assert tool.control() is Control.REMOTE
    tool.load("W-LOC")
    assert tool.state() in (S.LOADING, S.READY)


def test_raw_line_and_reset(tool: ExposureTool) -> None:
    assert tool.raw("SYST:STAT?;:EXP:FIEL?") == f"{tool.state()};52"
    assert tool.raw("EXP:DOSE 320") is None and tool.dose == 320.0
    with pytest.raises(ToolRejected) as err:
        tool.raw("RES:CD?")  # no result outside COMPLETE: refused at once, not a timeout
    assert err.value.code == -221
    tool.reset()
    assert tool.dose == 300.0 and tool.state() is S.IDLE


@pytest.mark.sim_time_scale(2000)
def test_full_cycle_load_expose_develop_result_unload(tool: ExposureTool, sims: Any) -> None:
    loaded(tool, sims, "W-FULL")
    assert tool.wafer_id() == "W-FULL" and tool.film_um() > 0
    with pytest.raises(ToolRejected):
        tool.result()
    tool.dose = 350.0
    tool.start_exposure()
    job = tool.last_job()
    assert (job.wafer_id, job.kind, job.dose) == ("W-FULL", "EXPOSE", 350.0)
    assert tool.job_count("W-FULL") == 1 and tool.job_count("NEVER-SEEN") == 0
    wait_for(tool.state, S.EXPOSED)
    tool.start_develop()
    wait_for(tool.state, S.COMPLETE)
    result = tool.result()
    assert result.depth_um > 0 and result.cd_um > 0 and result.residual_um >= 0
    job = tool.last_job()
    assert (job.kind, job.status) == ("DEVELOP", JobStatus.DONE) and job.age_s >= 0
    tool.unload()
    wait_for(tool.state, S.IDLE)
    assert tool.wafer_id() is None and tool.errors() == []


@pytest.mark.sim_time_scale(50)
def test_abort_leaves_alarm_until_unload(tool: ExposureTool, sims: Any) -> None:
    loaded(tool, sims, "W-ABT")
    tool.start_exposure()
    tool.abort()
    assert tool.state() is S.ALARM
    assert tool.last_job().status is JobStatus.ABORTED
    with pytest.raises(ToolRejected) as err:
        tool.start_exposure()
    assert err.value.code == -221
    tool.clear_alarms()
    assert tool.state() is S.ALARM  # the job was aborted: only an unload gets out
    tool.unload()
    wait_for(tool.state, S.IDLE)


# ------------------------------------------------------------------- comms faults
def fast(tools_cfg: dict[str, dict[str, Any]]) -> ExposureTool:
    return ExposureTool.from_config({**tools_cfg["exposure"], "timeout_s": FAST_TIMEOUT_S})


@pytest.mark.fault
@pytest.mark.parametrize("fault", ["mute", "garble", "slow"])
def test_comms_fault_is_a_prompt_comms_error_and_clears(fault: str, fault_sims: Any,
                                                         tools_cfg: dict[str, Any]) -> None:
    with fast(tools_cfg) as tool:
        fault_sims.call(fault_sims.faults["exposure"].inject, fault, delay_s=1.0)
        for call in (tool.state, lambda: tool.set("dose", 310.0), tool.status):
            start = time.monotonic()
            with pytest.raises(CommsError):
                call()
            # one timeout (plus a reconnect probe at most), never a hang
            assert time.monotonic() - start < 2 * FAST_TIMEOUT_S + 0.3
        fault_sims.call(fault_sims.faults["exposure"].clear, fault)
        time.sleep(1.1 if fault == "slow" else 0.0)  # let a delayed reply drain
        assert tool.state() in set(S)
        tool.set("dose", 310.0)
        assert tool.dose == 310.0


@pytest.mark.fault
def test_a_dropped_connection_is_reopened_on_the_next_call(fault_sims: Any,
                                                           tools_cfg: dict[str, Any]) -> None:
    with fast(tools_cfg) as tool:
        tool.remote()
        fault_sims.call(fault_sims.faults["exposure"].inject, "drop")
        time.sleep(0.05)
        assert tool.control() is Control.REMOTE  # REMOTE survives a dropped connection
        assert tool.transport.connects == 2
        fault_sims.call(fault_sims.faults["exposure"].inject, "drop")
        time.sleep(0.05)
        tool.local()  # a command after a drop goes out once, on the new connection
        assert tool.control() is Control.LOCAL and tool.errors() == []


def test_unreachable_tool_is_a_prompt_comms_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tool = ExposureTool.from_config({"resource": f"TCPIP0::127.0.0.1::{port}::SOCKET",
                                     "timeout_s": 0.5})
    start = time.monotonic()
    with pytest.raises(CommsError):
        tool.connect()
    with pytest.raises(CommsError):
        tool.state()
    assert time.monotonic() - start < 1.5


# ------------------------------------------------------------------- process faults
@pytest.mark.fault
@pytest.mark.sim_time_scale(20)
@pytest.mark.parametrize(("fault", "alarm", "code"),
                         [("door_open", "DOOR_OPEN", 201), ("lamp_fail", "LAMP_FAIL", 202)])
def test_alarm_during_exposure_aborts_and_is_reported(fault: str, alarm: str, code: int,
                                                      fault_sims: Any, tool: ExposureTool) -> None:
    loaded(tool, fault_sims, f"W-{code}")
    tool.start_exposure()
    fault_sims.call(fault_sims.faults["exposure"].inject, fault)
    wait_for(tool.state, S.ALARM)
    assert alarm in tool.alarms() and alarm in tool.status().alarms
    assert tool.last_job().status is JobStatus.ABORTED
    assert (code, ) == tuple(c for c, _ in tool.errors() if c > 0)
    with pytest.raises(ToolRejected) as err:
        tool.start_develop()
    assert err.value.code == -221
    tool.clear_alarms()
    assert alarm in tool.alarms()  # the cause is still there
    fault_sims.call(fault_sims.faults["exposure"].clear, fault)
    tool.clear_alarms()
    assert tool.alarms() == () and tool.state() is S.ALARM
    tool.unload()
    wait_for(tool.state, S.IDLE)
