"""CV-25 oven simulator over real Modbus TCP, with a plain pymodbus client (not our driver).

Each test runs its own OvenSim in an asyncio thread (``OvenRig``) on an
ephemeral port, at a fast time_scale so a whole 3.5 h program takes seconds.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from simulators.clock import ScaledClock
from simulators.faults import Faults
from simulators.oven import OvenSim
from simulators.world import TransferError, World

# input registers
PV, WSP, HEATER, O2, STATE, SEGMENT, SOAK_HI, SOAK_LO, ALARMS, N2 = range(10)
BATCH_HI, BATCH_LO, WAFER_T, SINCE_HI, SINCE_LO, PHASE = range(10, 16)
IDLE, PURGING, RUNNING, PAUSED, COOLING, COMPLETE, ABORTED = range(7)
START, PAUSE, RESUME, ABORT, ACK = 1, 2, 3, 4, 5
# discrete inputs
DOOR_CLOSED, DOOR_LOCKED, CONTACTOR, HL_TRIPPED, CASSETTE = range(5)


class OvenRig:
    """An OvenSim served from its own event-loop thread; ``call`` runs code in that thread."""

    def __init__(self, time_scale: float) -> None:
        self.clock = ScaledClock(time_scale)
        self.world = World(self.clock)
        self.faults = Faults("oven")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim: OvenSim = self.call(lambda: OvenSim(self.world, self.clock, self.faults, 1))
        fut = asyncio.run_coroutine_threadsafe(self.sim.start("127.0.0.1", 0), self.loop)
        self.endpoints: dict[str, Any] = fut.result(timeout=5)
        self.host, self.port = self.endpoints["tcp"]

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=5)

    def client(self, timeout: float = 2.0) -> ModbusTcpClient:
        c = ModbusTcpClient(self.host, port=self.port, timeout=timeout, retries=0)
        assert c.connect()
        return c

    def load(self, wafers: list[str]) -> None:
        self.call(self.world.add_wafers, wafers)
        self.call(self.world.transfer, wafers, "oven")

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def open_rig(request: pytest.FixtureRequest) -> Iterator[OvenRig]:
    """Fixture body: time_scale from ``parametrize("rig", [scale], indirect=True)``."""
    r = OvenRig(getattr(request, "param", 1000.0))
    yield r
    r.close()


rig = pytest.fixture(open_rig, name="rig")


def ir(c: ModbusTcpClient) -> list[int]:
    rr = c.read_input_registers(0, count=16, device_id=1)
    assert not rr.isError(), rr
    return rr.registers


def di(c: ModbusTcpClient) -> list[bool]:
    rr = c.read_discrete_inputs(0, count=5, device_id=1)
    assert not rr.isError(), rr
    return rr.bits[:5]


def u32(regs: list[int], hi: int) -> int:
    return (regs[hi] << 16) | regs[hi + 1]


def s16(v: int) -> int:
    return v - 0x10000 if v & 0x8000 else v


def exc(rr: Any) -> int | None:
    """The exception code of a reply (None for a normal reply)."""
    return rr.exception_code if rr.isError() else None


def wait_ir(c: ModbusTcpClient, pred: Callable[[list[int]], bool], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        regs = ir(c)
        if pred(regs):
            return regs
        assert time.monotonic() < deadline, f"timed out; last input registers {regs}"
        time.sleep(0.01)


def start_program(rig: OvenRig, c: ModbusTcpClient, batch: int = 7, wafers: int = 2) -> None:
    rig.load([f"W{i:02d}" for i in range(1, wafers + 1)])
    assert not c.write_coil(0, True, device_id=1).isError()
    assert not c.write_registers(106, [batch >> 16, batch & 0xFFFF], device_id=1).isError()
    assert exc(c.write_register(100, START, device_id=1)) is None


def short_program(c: ModbusTcpClient, segments: list[tuple[int, int, int]]) -> None:
    flat = [v for seg in segments for v in seg]
    assert not c.write_register(101, len(segments), device_id=1).isError()
    assert not c.write_registers(110, flat, device_id=1).isError()


# --------------------------------------------------------------------- power-on
def test_power_on_state_and_defaults(rig: OvenRig) -> None:
    c = rig.client()
    regs = ir(c)
    assert 200 <= s16(regs[PV]) <= 250
    assert regs[STATE] == IDLE and regs[SEGMENT] == 0xFFFF and regs[PHASE] == 0xFFFF
    assert u32(regs, BATCH_HI) == 0 and u32(regs, SINCE_HI) == 0 and regs[ALARMS] == 0
    assert regs[HEATER] == 0 and regs[N2] == 0
    hr = c.read_holding_registers(100, count=34, device_id=1).registers
    assert hr[:10] == [0, 2, 20, 500, 3500, 1000, 0, 0, 0, 0]
    assert hr[10:16] == [1500, 50, 30, 3200, 30, 60]
    assert hr[16:] == [250, 10, 0] * 6
    assert di(c) == [True, False, False, False, False]
    assert c.read_coils(0, count=1, device_id=1).bits[0] is False
    c.close()


# --------------------------------------------------------------- protocol rules
def test_function_codes_other_than_supported_answer_01(rig: OvenRig) -> None:
    c = rig.client()
    assert exc(c.write_coils(0, [True], device_id=1)) == 1  # FC 15
    assert (
        exc(
            c.readwrite_registers(
                read_address=100, read_count=1, write_address=101, values=[2], device_id=1
            )
        )
        == 1
    )  # FC 23
    assert (
        exc(c.mask_write_register(address=101, and_mask=0xFFFF, or_mask=0, device_id=1)) == 1
    )  # FC 22
    assert exc(c.diag_read_diagnostic_register(device_id=1)) == 1  # FC 08
    c.close()
    with socket.create_connection((rig.host, rig.port), timeout=2) as s:
        s.sendall(struct.pack(">HHHBB", 9, 0, 2, 1, 0x41))  # a function code nobody defines
        assert s.recv(64) == struct.pack(">HHHBBB", 9, 0, 3, 1, 0xC1, 1)


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("read_input_registers", (16, 1)),
        ("read_input_registers", (15, 2)),
        ("read_holding_registers", (99, 1)),
        ("read_holding_registers", (133, 2)),
        ("read_holding_registers", (0, 1)),
        ("read_input_registers", (100, 1)),
        ("read_coils", (1, 1)),
        ("read_discrete_inputs", (4, 2)),
        ("read_discrete_inputs", (5, 1)),
    ],
)
def test_any_unmapped_address_answers_02(rig: OvenRig, op: str, args: tuple[int, int]) -> None:
    c = rig.client()
    assert exc(getattr(c, op)(args[0], count=args[1], device_id=1)) == 2
    c.close()


def test_unmapped_writes_answer_02(rig: OvenRig) -> None:
    c = rig.client()
    assert exc(c.write_coil(1, True, device_id=1)) == 2
    assert exc(c.write_register(134, 1, device_id=1)) == 2
    assert exc(c.write_register(5, 1, device_id=1)) == 2
    assert exc(c.write_registers(132, [10, 0, 0], device_id=1)) == 2
    assert c.read_holding_registers(132, count=2, device_id=1).registers == [10, 0]
    c.close()


def test_out_of_range_values_answer_03_and_writes_are_all_or_nothing(rig: OvenRig) -> None:
    c = rig.client()
    assert exc(c.write_register(101, 9, device_id=1)) == 3
    assert exc(c.write_register(104, 4001, device_id=1)) == 3
    assert exc(c.write_register(111, 0, device_id=1)) == 3  # ramp rate 0
    assert exc(c.write_register(100, 6, device_id=1)) == 3  # no such command
    # FC 16: the last register is out of range -> none of them changes
    assert (
        exc(
            c.write_registers(101, [4, 30, 600, 3000, 900, 0, 5, 0, 0, 1500, 50, 0, 1], device_id=1)
        )
        == 3
    )
    hr = c.read_holding_registers(101, count=13, device_id=1).registers
    assert hr == [2, 20, 500, 3500, 1000, 0, 0, 0, 0, 1500, 50, 30, 3200]
    # a multi-register write that includes register 100 answers 03, even with good values
    assert exc(c.write_registers(100, [5, 2], device_id=1)) == 3
    assert exc(c.write_registers(99, [0, 5], device_id=1)) == 2  # address checked first
    c.close()
    with socket.create_connection((rig.host, rig.port), timeout=2) as s:
        s.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 100, 126))  # quantity 126 > 125
        assert s.recv(64)[7:] == bytes((0x83, 3))
        s.sendall(struct.pack(">HHHBBHH", 2, 0, 6, 1, 5, 0, 0x1234))  # coil value not FF00/0000
        assert s.recv(64)[7:] == bytes((0x85, 3))


def test_command_and_reserved_registers_read_zero_batch_is_u32(rig: OvenRig) -> None:
    c = rig.client()
    assert exc(c.write_register(100, ACK, device_id=1)) is None  # ACK always succeeds
    assert exc(c.write_registers(100, [ACK], device_id=1)) is None  # FC 16 of one register
    assert exc(c.write_registers(106, [0x0001, 0x0002, 77, 88], device_id=1)) is None
    hr = c.read_holding_registers(100, count=10, device_id=1).registers
    assert hr[0] == 0 and hr[6:10] == [1, 2, 0, 0]
    c.close()


def test_unit_id_other_than_1_gets_no_useful_answer(rig: OvenRig) -> None:
    c = rig.client(timeout=0.5)
    try:
        rr = c.read_input_registers(0, count=1, device_id=2)
        assert rr.isError()
    except Exception:  # no reply at all is fine too
        pass
    assert not c.read_input_registers(0, count=1, device_id=1).isError()
    c.close()


def test_four_tcp_connections_a_fifth_is_closed(rig: OvenRig) -> None:
    clients = [rig.client() for _ in range(4)]
    for c in clients:
        assert ir(c)[STATE] == IDLE
    with socket.create_connection((rig.host, rig.port), timeout=2) as s:
        s.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, 0, 1))
        try:
            assert s.recv(64) == b""  # closed without an answer
        except ConnectionResetError:
            pass
    clients[0].close()
    time.sleep(0.1)
    fifth = rig.client()
    assert ir(fifth)[STATE] == IDLE
    for c in [*clients[1:], fifth]:
        c.close()


# ------------------------------------------------------------------- commands
def test_command_preconditions_answer_04(rig: OvenRig) -> None:
    c = rig.client()
    for cmd in (PAUSE, RESUME, ABORT):
        assert exc(c.write_register(100, cmd, device_id=1)) == 4
    assert exc(c.write_register(100, START, device_id=1)) == 4  # no cassette, not locked
    rig.load(["W01"])
    assert di(c)[CASSETTE] is True
    assert exc(c.write_register(100, START, device_id=1)) == 4  # door not locked
    assert not c.write_coil(0, True, device_id=1).isError()
    with pytest.raises(TransferError):  # door locked: material handling cannot open it
        rig.call(rig.world.transfer, ["W01"], "stocker")
    # a used segment target not below high limit - 15 C
    assert not c.write_register(104, 1640, device_id=1).isError()
    assert exc(c.write_register(100, START, device_id=1)) == 4
    # segments at or beyond the count are not checked
    assert not c.write_register(101, 1, device_id=1).isError()
    assert not c.write_register(104, 1651, device_id=1).isError()
    assert not c.write_register(113, 4000, device_id=1).isError()
    assert exc(c.write_register(100, START, device_id=1)) is None
    assert ir(c)[STATE] == PURGING
    assert exc(c.write_register(100, START, device_id=1)) == 4  # already running
    assert exc(c.write_register(100, RESUME, device_id=1)) == 4
    c.close()


def test_program_registers_refused_while_running_door_lock_held(rig: OvenRig) -> None:
    c = rig.client()
    start_program(rig, c)
    assert exc(c.write_register(102, 30, device_id=1)) == 4
    assert exc(c.write_registers(107, [0, 0, 1500], device_id=1)) == 4  # spans reserved regs
    assert exc(c.write_register(108, 5, device_id=1)) is None  # reserved: not a program reg
    assert c.read_holding_registers(101, count=9, device_id=1).registers == [
        2,
        20,
        500,
        3500,
        1000,
        0,
        7,
        0,
        0,
    ]
    assert exc(c.write_coil(0, False, device_id=1)) == 4  # unlock while a program runs
    assert di(c)[DOOR_LOCKED] is True
    with pytest.raises(TransferError):
        rig.call(rig.world.transfer, ["W01"], "stocker")
    c.close()


@pytest.mark.parametrize("rig", [4000.0], indirect=True)
@pytest.mark.timeout(30)
def test_full_default_program_runs_to_complete(rig: OvenRig) -> None:
    c = rig.client()
    t0 = rig.clock.now()
    start_program(rig, c, batch=0x12345)
    seen: list[tuple[int, int, int]] = []
    purge_done_o2: int | None = None
    while True:
        regs = ir(c)
        key = (regs[STATE], regs[SEGMENT], regs[PHASE])
        if not seen or seen[-1] != key:
            seen.append(key)
            if key == (RUNNING, 0, 0) and purge_done_o2 is None:
                purge_done_o2 = regs[O2]
        if regs[STATE] == RUNNING and regs[PHASE] == 2:
            assert abs(s16(regs[PV]) - s16(regs[WSP])) <= 150  # no deviation in a good run
            assert u32(regs, SOAK_HI) <= (30 if regs[SEGMENT] == 0 else 60) * 60
        if regs[STATE] == RUNNING and regs[PHASE] in (0, 1):
            assert u32(regs, SOAK_HI) == (30 if regs[SEGMENT] == 0 else 60) * 60
        assert regs[ALARMS] == 0
        assert (
            u32(regs, BATCH_HI) == 0x12345 and u32(regs, SINCE_HI) == 0 or regs[STATE] == COMPLETE
        )
        if regs[STATE] == COMPLETE:
            break
        assert rig.clock.now() - t0 < 5 * 3600, seen
        time.sleep(0.005)
    hours = (rig.clock.now() - t0) / 3600
    assert 3.0 < hours < 4.0  # ~3.5 h a batch
    phases = [k for k in seen if k[0] == RUNNING]
    assert [p for p in phases if p[2] == 2] == [(RUNNING, 0, 2), (RUNNING, 1, 2)]
    assert seen[0][0] == PURGING and seen[-2][0] == COOLING
    assert purge_done_o2 is not None and purge_done_o2 <= 20
    assert s16(regs[PV]) <= 1000 and regs[HEATER] == 0 and regs[SEGMENT] == 0xFFFF
    assert c.read_coils(0, count=1, device_id=1).bits[0] is False  # lock released
    assert di(c)[DOOR_LOCKED] is False
    since = u32(regs, SINCE_HI)
    later = wait_ir(c, lambda r: u32(r, SINCE_HI) >= since + 600, 5)
    assert later[STATE] == COMPLETE
    w = rig.world.wafer("W01")
    assert w.cure_batches == [0x12345] and w.degree_of_cure > 0.99
    events = [e for _, tool, e in w.history if tool == "oven"]
    assert events == [f"cure start batch {0x12345}", f"cure complete batch {0x12345}"]
    # unloading opens the door: COMPLETE -> IDLE; batch and time since end stay readable
    rig.call(rig.world.transfer, ["W01", "W02"], "stocker")
    regs = ir(c)
    assert regs[STATE] == IDLE and u32(regs, BATCH_HI) == 0x12345 and u32(regs, SINCE_HI) > 0
    assert di(c)[CASSETTE] is False
    c.close()


@pytest.mark.parametrize("rig", [1000.0], indirect=True)
def test_pause_freezes_setpoint_and_segment_clock_resume_continues(rig: OvenRig) -> None:
    c = rig.client()
    short_program(c, [(600, 200, 30)])  # 60 C at 20 C/min, soak 30 min
    start_program(rig, c)
    regs = wait_ir(c, lambda r: r[STATE] == RUNNING and r[PHASE] == 2, 10)
    assert exc(c.write_register(100, PAUSE, device_id=1)) is None
    frozen = ir(c)
    assert frozen[STATE] == PAUSED and frozen[SEGMENT] == 0 and frozen[PHASE] == 2
    time.sleep(0.3)  # 5 min of tool time
    later = ir(c)
    assert later[WSP] == frozen[WSP] and u32(later, SOAK_HI) == u32(frozen, SOAK_HI)
    assert exc(c.write_register(100, PAUSE, device_id=1)) == 4
    assert exc(c.write_register(100, RESUME, device_id=1)) is None
    assert ir(c)[STATE] == RUNNING
    wait_ir(c, lambda r: u32(r, SOAK_HI) < u32(frozen, SOAK_HI) - 60, 5)
    del regs
    c.close()


@pytest.mark.parametrize("rig", [1000.0], indirect=True)
def test_pause_during_purge_and_abort(rig: OvenRig) -> None:
    c = rig.client()
    start_program(rig, c)
    assert exc(c.write_register(100, PAUSE, device_id=1)) is None
    assert ir(c)[STATE] == PAUSED and ir(c)[SEGMENT] == 0xFFFF
    assert exc(c.write_register(100, RESUME, device_id=1)) is None
    wait_ir(c, lambda r: r[STATE] == RUNNING and s16(r[PV]) > 1100, 10)
    assert exc(c.write_register(100, ABORT, device_id=1)) is None
    regs = ir(c)
    assert regs[STATE] == ABORTED and regs[HEATER] == 0 and regs[SEGMENT] == 0xFFFF
    assert di(c)[CONTACTOR] is False and di(c)[DOOR_LOCKED] is True
    wait_ir(c, lambda r: u32(r, SINCE_HI) > 0, 5)
    assert exc(c.write_register(100, ABORT, device_id=1)) == 4
    # hot: the door stays locked until the chamber is at or below the unload temperature
    assert exc(c.write_coil(0, False, device_id=1)) == 4
    wait_ir(c, lambda r: s16(r[PV]) <= 1000, 10)
    assert exc(c.write_coil(0, False, device_id=1)) is None
    assert exc(c.write_register(102, 30, device_id=1)) is None  # ABORTED: writable again
    events = [e for _, tool, e in rig.world.wafer("W01").history if tool == "oven"]
    assert events == ["cure start batch 7", "cure aborted batch 7: aborted by host"]
    rig.call(rig.world.transfer, ["W01", "W02"], "stocker")
    assert ir(c)[STATE] == IDLE
    c.close()
