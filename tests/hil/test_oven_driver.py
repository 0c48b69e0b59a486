"""CureOven against the CV-25 simulator over Modbus TCP and Modbus RTU (a pty).

Tests that only talk to the oven use ``tools_cfg`` (so they also run against a
real oven with ``--tools``); tests that move a cassette in or inject faults use
``fault_sims``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivers.errors import CommsError, InterlockError, ToolRejected, ValidationError
from drivers.oven import CureOven, OvenProgram, OvenState, OvenStatus, Segment

pytestmark = [pytest.mark.sim_tools("oven"), pytest.mark.sim_time_scale(500)]

#: A program that completes in a few simulated minutes: fast purge, one low segment.
QUICK = OvenProgram((Segment(40.0, 20.0, 0),), o2_limit_ppm=1000, n2_flow_slm=100.0,
                    high_limit_c=350.0, unload_c=50.0, batch_no=4242)


@pytest.fixture(params=["tcp", "rtu"])
def oven(
    request: pytest.FixtureRequest, tools_cfg: dict[str, dict[str, Any]]
) -> Iterator[CureOven]:
    entry = dict(tools_cfg["oven"], timeout_s=1.0)
    if request.param == "rtu":
        if not entry.get("serial_port"):
            pytest.skip("no RTU serial port configured for the oven")
        entry["transport"] = "rtu"
    drv = CureOven.from_config(entry)
    drv.connect()
    yield drv
    drv.close()


def wait_for(oven: CureOven, pred: Callable[[OvenStatus], bool], timeout_s: float = 20.0,
             what: str = "") -> OvenStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        st = oven.status()
        if pred(st):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}: last {st}")
        time.sleep(0.02)


def load_cassette(sims: Any, wafers: list[str]) -> None:
    sims.call(sims.world.add_wafers, wafers)
    sims.call(sims.world.transfer, wafers, "oven")


def ready_to_start(oven: CureOven, sims: Any, program: OvenProgram = QUICK) -> None:
    load_cassette(sims, ["W01", "W02"])
    oven.upload(program)
    oven.lock_door(True)


@pytest.mark.timeout(30)
def test_upload_reads_back_and_survives_reconnect(oven: CureOven) -> None:
    oven.upload(QUICK)
    assert oven.read_program() == QUICK
    assert oven.get("seg0_target") == 40.0
    oven.set("seg0_soak", 5)
    assert oven.get("seg0_soak") == 5
    oven.set("next_batch", 70000)  # u32 across two registers
    assert oven.get("next_batch") == 70000
    oven.close()
    oven.connect()
    assert oven.read_program().segments == (Segment(40.0, 20.0, 5),)


@pytest.mark.timeout(30)
def test_out_of_range_values_are_refused_before_sending(oven: CureOven) -> None:
    before = oven.read_program()
    with pytest.raises(ValidationError, match="high_limit = 401.*50.0 – 400.0 °C"):
        oven.set("high_limit", 401)
    with pytest.raises(ValidationError, match="seg0_ramp"):
        oven.upload(OvenProgram((Segment(150.0, 0.0, 10),)))
    with pytest.raises(ValidationError, match="segments"):
        oven.upload(OvenProgram(tuple(Segment(100.0, 1.0, 1) for _ in range(9))))
    assert oven.read_program() == before


@pytest.mark.timeout(30)
def test_refused_commands_are_tool_rejected_code_4(oven: CureOven) -> None:
    assert oven.status().state in (OvenState.IDLE, OvenState.COMPLETE, OvenState.ABORTED)
    for cmd in (oven.pause, oven.resume, oven.abort):
        with pytest.raises(ToolRejected) as err:
            cmd()
        assert err.value.code == 4 and "state is" in err.value.text
    oven.ack_alarms()  # always accepted
    with pytest.raises(ToolRejected) as err:  # door not locked / no cassette
        oven.start()
    assert err.value.code == 4


@pytest.mark.timeout(60)
def test_full_program_runs_to_complete(oven: CureOven, fault_sims: Any) -> None:
    ready_to_start(oven, fault_sims)
    st = oven.status()
    assert st.door_locked and st.cassette_present and st.lock_requested
    oven.start()
    st = oven.status()
    assert st.state in (OvenState.PURGING, OvenState.RUNNING)
    assert st.batch_no == 4242 == oven.batch_no()
    rd = oven.readings()  # what a cure polls: the input registers, one request
    assert rd.batch_no == 4242 and rd.state in (OvenState.PURGING, OvenState.RUNNING)
    with pytest.raises(ToolRejected) as err:  # program registers are locked while running
        oven.set("seg0_target", 60.0)
    assert err.value.code == 4 and "state is" in err.value.text
    with pytest.raises(InterlockError):  # the door stays locked while a program runs
        oven.lock_door(False)
    seen = set()

    def done(s: OvenStatus) -> bool:
        seen.add(s.state)
        return s.state is OvenState.COMPLETE

    st = wait_for(oven, done, what="COMPLETE")
    assert {OvenState.RUNNING, OvenState.COMPLETE} <= seen
    assert st.segment is None and st.chamber_c <= 50.0 and not st.door_locked
    assert st.alarms.names() == () and oven.alarms() == ()


@pytest.mark.timeout(60)
def test_pause_resume_abort_ack(oven: CureOven, fault_sims: Any) -> None:
    ready_to_start(oven, fault_sims, OvenProgram((Segment(100.0, 1.0, 60),)))
    oven.start()
    oven.pause()
    assert oven.status().state is OvenState.PAUSED
    with pytest.raises(ToolRejected):
        oven.pause()
    oven.resume()
    assert oven.status().state in (OvenState.PURGING, OvenState.RUNNING)
    oven.abort()
    st = oven.status()
    assert st.state is OvenState.ABORTED and not st.contactor_closed
    oven.ack_alarms()
    oven.reset()  # nothing runs: just ACK
    assert oven.status().state is OvenState.ABORTED


@pytest.mark.timeout(60)
def test_door_open_mid_run_aborts(oven: CureOven, fault_sims: Any) -> None:
    ready_to_start(oven, fault_sims)
    oven.start()
    fault_sims.call(fault_sims.faults["oven"].inject, "door_open")
    st = wait_for(oven, lambda s: s.state is OvenState.ABORTED, 5.0, "ABORTED")
    assert "DOOR_OPEN" in st.alarms.names() and not st.door_closed
    assert not st.contactor_closed and st.heater_pct == 0.0
    fault_sims.call(fault_sims.faults["oven"].clear, "door_open")
    oven.ack_alarms()
    st = wait_for(oven, lambda s: s.door_closed and not s.alarms, 5.0, "door closed, no alarm")
    oven.start()  # usable again once the door is shut and the alarm acknowledged
    oven.abort()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["mute", "garble", "slow"])
def test_comms_faults_fail_within_timeout_then_recover(
    oven: CureOven, fault_sims: Any, fault: str
) -> None:
    faults = fault_sims.faults["oven"]
    params = {"delay_s": 1.3} if fault == "slow" else {}
    fault_sims.call(faults.inject, fault, **params)
    t0 = time.monotonic()
    with pytest.raises(CommsError):
        oven.status()
    assert time.monotonic() - t0 < 2.5  # timeout_s is 1.0; a status is up to 3 requests
    fault_sims.call(faults.clear, fault)
    if fault == "slow":
        time.sleep(1.4)  # let the late reply arrive and be thrown away with its connection
    assert oven.status().state in set(OvenState)


@pytest.mark.timeout(30)
def test_drop_reconnects_on_next_call(oven: CureOven, fault_sims: Any) -> None:
    assert oven.status()
    fault_sims.call(fault_sims.faults["oven"].inject, "drop")
    time.sleep(0.1)
    oven.upload(QUICK)  # a write after a drop goes out on a fresh connection
    assert oven.read_program() == QUICK
