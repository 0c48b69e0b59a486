"""CV-25 oven simulator: process faults, alarms, comms faults and Modbus RTU on the pty."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest
import serial
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.framer import FramerRTU

from tests.hil.test_sim_oven import (
    ABORT,
    ABORTED,
    ACK,
    ALARMS,
    CONTACTOR,
    DOOR_CLOSED,
    HEATER,
    HL_TRIPPED,
    IDLE,
    PHASE,
    PURGING,
    PV,
    RUNNING,
    START,
    STATE,
    OvenRig,
    di,
    exc,
    ir,
    open_rig,
    s16,
    short_program,
    start_program,
    wait_ir,
)

rig = pytest.fixture(open_rig, name="rig")
BIT_OVERTEMP, BIT_DOOR, BIT_O2, BIT_N2, BIT_SENSOR, BIT_DEVIATION = (1 << i for i in range(6))


def events(r: OvenRig, wafer: str = "W01") -> list[str]:
    return [e for _, tool, e in r.world.wafer(wafer).history if tool == "oven"]


@pytest.mark.parametrize("rig", [2000.0], indirect=True)
def test_o2_purge_fail_aborts_after_60_min_with_o2_high(rig: OvenRig) -> None:
    c = rig.client()
    rig.call(rig.faults.inject, "o2_purge_fail")
    t0 = rig.clock.now()
    start_program(rig, c)
    regs = wait_ir(c, lambda r: r[STATE] != PURGING, 5)
    elapsed = rig.clock.now() - t0
    assert regs[STATE] == ABORTED and regs[ALARMS] & BIT_O2
    assert 3600 <= elapsed < 3600 + 120
    assert events(rig)[-1] == "cure aborted batch 7: O2 purge timeout"
    c.close()


@pytest.mark.parametrize("rig", [2000.0], indirect=True)
def test_over_temperature_trips_high_limit_latched_until_ack_with_cause_gone(rig: OvenRig) -> None:
    c = rig.client()
    short_program(c, [(1500, 50, 60)])
    assert exc(c.write_register(104, 2000, device_id=1)) is None  # high limit 200 C
    rig.call(rig.faults.inject, "over_temperature")
    start_program(rig, c)
    regs = wait_ir(c, lambda r: r[STATE] == ABORTED, 10)
    assert s16(regs[PV]) >= 1950 and regs[ALARMS] & BIT_OVERTEMP and regs[HEATER] == 0
    inputs = di(c)
    assert inputs[HL_TRIPPED] is True and inputs[CONTACTOR] is False
    assert events(rig)[-1] == "cure aborted batch 7: over-temperature, high limit tripped"
    rig.call(rig.faults.clear, "over_temperature")
    # cause still there: the chamber is above a (now lowered) high limit -> ACK keeps the latch
    assert exc(c.write_register(104, 500, device_id=1)) is None
    assert exc(c.write_register(100, ACK, device_id=1)) is None
    assert ir(c)[ALARMS] & BIT_OVERTEMP and di(c)[HL_TRIPPED] is True
    assert exc(c.write_register(100, START, device_id=1)) == 4  # tripped: no START
    # cause gone: the latch stays until ACK, then clears
    assert exc(c.write_register(104, 3500, device_id=1)) is None
    time.sleep(0.1)
    assert ir(c)[ALARMS] & BIT_OVERTEMP
    assert exc(c.write_register(100, ACK, device_id=1)) is None
    assert ir(c)[ALARMS] & BIT_OVERTEMP == 0 and di(c)[HL_TRIPPED] is False
    c.close()


@pytest.mark.parametrize("rig", [2000.0], indirect=True)
def test_deviation_alarm_is_reported_not_fatal(rig: OvenRig) -> None:
    c = rig.client()
    short_program(c, [(800, 200, 120)])  # 80 C, soak 2 h; high limit stays 350 C
    start_program(rig, c)
    wait_ir(c, lambda r: r[STATE] == RUNNING and r[PHASE] == 2, 10)
    rig.call(rig.faults.inject, "over_temperature")  # heater runs away during the soak
    regs = wait_ir(c, lambda r: r[ALARMS] & BIT_DEVIATION, 5)
    assert regs[STATE] == RUNNING and s16(regs[PV]) > 800 + 150
    rig.call(rig.faults.clear, "over_temperature")
    regs = wait_ir(c, lambda r: not r[ALARMS] & BIT_DEVIATION, 10)
    assert regs[STATE] == RUNNING
    c.close()


@pytest.mark.parametrize("rig", [1000.0], indirect=True)
def test_door_open_fault_aborts_and_reports_door(rig: OvenRig) -> None:
    c = rig.client()
    start_program(rig, c)
    wait_ir(c, lambda r: r[STATE] == RUNNING, 10)
    rig.call(rig.faults.inject, "door_open")
    regs = wait_ir(c, lambda r: r[STATE] == ABORTED, 2)
    assert regs[ALARMS] & BIT_DOOR and regs[HEATER] == 0
    assert di(c)[DOOR_CLOSED] is False and di(c)[CONTACTOR] is False
    assert events(rig)[-1] == "cure aborted batch 7: door opened"
    rig.call(rig.faults.clear, "door_open")
    regs = wait_ir(c, lambda r: not r[ALARMS] & BIT_DOOR, 2)
    assert regs[STATE] == ABORTED and di(c)[DOOR_CLOSED] is True
    # a bolt cannot lock an open door
    rig.call(rig.faults.inject, "door_open")
    wait_ir(c, lambda r: r[ALARMS] & BIT_DOOR, 2)
    assert exc(c.write_coil(0, True, device_id=1)) == 4
    c.close()


@pytest.mark.parametrize("rig", [1000.0], indirect=True)
def test_sensor_break_cuts_heaters_and_aborts(rig: OvenRig) -> None:
    c = rig.client()
    start_program(rig, c)
    wait_ir(c, lambda r: r[STATE] == RUNNING, 10)
    rig.call(rig.faults.inject, "sensor_break")
    regs = wait_ir(c, lambda r: r[STATE] == ABORTED, 2)
    assert regs[ALARMS] & BIT_SENSOR and regs[PV] == 0x7FFF and regs[HEATER] == 0
    assert events(rig)[-1] == "cure aborted batch 7: sensor break"
    assert exc(c.write_coil(0, False, device_id=1)) == 4  # temperature unknown: stays locked
    rig.call(rig.faults.clear, "sensor_break")
    regs = wait_ir(c, lambda r: not r[ALARMS] & BIT_SENSOR, 2)
    assert s16(regs[PV]) < 1000
    assert exc(c.write_coil(0, False, device_id=1)) is None
    c.close()


@pytest.mark.parametrize("rig", [1000.0], indirect=True)
def test_n2_flow_low_is_reported_and_o2_rises(rig: OvenRig) -> None:
    c = rig.client()
    start_program(rig, c)
    wait_ir(c, lambda r: r[STATE] == RUNNING, 10)
    rig.call(rig.faults.inject, "n2_flow_low")
    regs = wait_ir(c, lambda r: r[ALARMS] & BIT_N2 and r[ALARMS] & BIT_O2, 3)
    assert regs[STATE] == RUNNING  # reported, not fatal
    rig.call(rig.faults.clear, "n2_flow_low")
    wait_ir(c, lambda r: not r[ALARMS] & (BIT_N2 | BIT_O2), 5)
    assert exc(c.write_register(100, ABORT, device_id=1)) is None
    c.close()


# ----------------------------------------------------------------- comms faults
MBAP_READ = struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, 4, 1)  # read input register 4 (state)
GOOD_REPLY = struct.pack(">HHHBBBH", 1, 0, 5, 1, 4, 2, IDLE)


def _ask(s: socket.socket) -> bytes:
    s.sendall(MBAP_READ)
    return s.recv(64)


def test_comms_faults_mute_slow_garble_drop(rig: OvenRig) -> None:
    with socket.create_connection((rig.host, rig.port), timeout=2) as s:
        assert _ask(s) == GOOD_REPLY
        rig.call(rig.faults.inject, "mute")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            _ask(s)
        rig.call(rig.faults.clear, "mute")
        s.settimeout(2)
        rig.call(rig.faults.inject, "garble")
        reply = _ask(s)
        assert reply[:7] == GOOD_REPLY[:7] and reply != GOOD_REPLY
        rig.call(rig.faults.clear, "garble")
        rig.call(rig.faults.inject, "slow", delay_s=0.4)
        t0 = time.monotonic()
        assert _ask(s) == GOOD_REPLY
        assert time.monotonic() - t0 >= 0.4
        rig.call(rig.faults.clear, "slow")
        rig.call(rig.faults.inject, "drop")
        try:
            assert s.recv(64) == b""
        except ConnectionResetError:
            pass
    with socket.create_connection((rig.host, rig.port), timeout=2) as s:  # new ones accepted
        assert _ask(s) == GOOD_REPLY


# ------------------------------------------------------------------------- RTU
def _rtu(pdu: bytes, unit: int = 1) -> bytes:
    frame = bytes((unit,)) + pdu
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


@pytest.mark.timeout(20)
def test_rtu_on_pty_serves_the_same_registers(rig: OvenRig) -> None:
    """19200 baud RTU, unit 1. Parity N: a pty has no parity bit (see docs/sim-oven.md)."""
    path = rig.endpoints["rtu"]
    assert path.startswith("/dev/pts/")

    async def session() -> None:
        client = AsyncModbusSerialClient(
            path, baudrate=19200, bytesize=8, parity="N", stopbits=1, timeout=1, retries=0
        )
        assert await client.connect()
        try:
            rr = await client.read_holding_registers(101, count=5, device_id=1)
            assert rr.registers == [2, 20, 500, 3500, 1000]
            assert not (await client.write_register(102, 30, device_id=1)).isError()
            rr = await client.read_input_registers(16, count=1, device_id=1)
            assert rr.exception_code == 2
            rr = await client.write_registers(100, [1, 2], device_id=1)
            assert rr.exception_code == 3
            assert (await client.write_register(100, START, device_id=1)).exception_code == 4
            rr = await client.read_input_registers(0, count=16, device_id=1)
            assert rr.registers[STATE] == IDLE
        finally:
            client.close()

    asyncio.run(session())
    tcp = rig.client()
    assert tcp.read_holding_registers(102, count=1, device_id=1).registers == [30]
    tcp.close()
    with serial.Serial(path, 19200, timeout=0.5) as port:
        port.write(_rtu(bytes((0x41, 0, 0))))  # unknown function code -> exception 01
        assert port.read(5) == _rtu(bytes((0xC1, 1)))
        port.write(_rtu(bytes((4, 0, 4, 0, 1)), unit=2))  # another unit: silence
        assert port.read(7) == b""
        bad = bytearray(_rtu(bytes((4, 0, 4, 0, 1))))
        bad[-1] ^= 0xFF  # CRC error: silence
        port.write(bytes(bad))
        assert port.read(7) == b""
        port.write(_rtu(bytes((4, 0, 4, 0, 1))))
        assert port.read(7) == _rtu(bytes((4, 2, 0, IDLE)))
