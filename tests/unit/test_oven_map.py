"""The oven register map (scaling, signs, u32, ranges) and the exact bytes the driver sends.

The protocol test runs the driver against a tiny in-process Modbus TCP server
that records every request frame (MBAP + PDU) and answers from a register
bank, so the test pins what goes on the wire — not what pymodbus thinks.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import CommsError, InterlockError, ToolRejected, ValidationError
from drivers.oven import CureOven
from drivers.oven_map import INPUTS, SETTINGS, Register, decode_program, program_words
from drivers.oven_types import OvenAlarm, OvenProgram, OvenReadings, OvenState, Segment

NUMERIC = [r for r in SETTINGS.values() if not r.is_bool]


def _in_range(reg: Register) -> st.SearchStrategy[float | int]:
    """Values a user may legitimately send, at the register's resolution."""
    lo, hi = round(reg.eng_lo * reg.scale), round(reg.eng_hi * reg.scale)
    raw = st.integers(lo, hi)
    return raw if reg.is_int else raw.map(lambda r: r / reg.scale)


@st.composite
def reg_and_value(draw: st.DrawFn) -> tuple[Register, float | int]:
    reg = draw(st.sampled_from(NUMERIC))
    return reg, draw(_in_range(reg))


@given(reg_and_value())
def test_encode_decode_round_trip(rv: tuple[Register, float | int]) -> None:
    reg, value = rv
    words = reg.encode(value)
    assert len(words) == reg.words and all(0 <= w <= 0xFFFF for w in words)
    assert reg.decode(words) == pytest.approx(value, abs=1e-9)


@given(st.integers(-32768, 32767))
def test_signed_temperatures_are_twos_complement(raw: int) -> None:
    chamber = next(r for r in INPUTS if r.name == "chamber_c")
    (word,) = chamber.encode(raw / 10)
    assert word == raw & 0xFFFF
    assert chamber.decode([word]) == pytest.approx(raw / 10)


def test_scaling_examples_from_the_manual() -> None:
    assert SETTINGS["chamber_c"].decode([1503]) == 150.3
    assert SETTINGS["chamber_c"].decode([0xFFF6]) == -1.0
    assert SETTINGS["seg0_target"].encode(150.0) == (1500,)
    assert SETTINGS["seg0_ramp"].encode(5.0) == (50,)
    assert SETTINGS["n2_flow"].encode(50.0) == (500,)
    assert SETTINGS["high_limit"].encode(350.0) == (3500,)


@given(st.integers(0, 2**32 - 1))
def test_u32_high_word_first(n: int) -> None:
    reg = SETTINGS["next_batch"]
    assert reg.encode(n) == (n >> 16, n & 0xFFFF)
    assert reg.decode([n >> 16, n & 0xFFFF]) == n


@given(st.data())
def test_out_of_range_is_refused_naming_register_and_range(data: st.DataObject) -> None:
    reg = data.draw(st.sampled_from([r for r in NUMERIC if r.lo is not None]))
    step = 1 if reg.is_int else 1 / reg.scale
    bad = data.draw(st.sampled_from([reg.eng_lo - step, reg.eng_hi + step,
                                     reg.eng_hi * 10 + 1, float("nan")]))
    with pytest.raises(ValidationError) as err:
        reg.encode(bad)
    assert err.value.parameter == reg.name
    assert err.value.allowed == reg.allowed
    assert reg.unit in str(err.value)


def test_ranges_are_the_manuals_in_engineering_units() -> None:
    assert SETTINGS["seg3_target"].allowed == "20.0 – 400.0 °C"
    assert SETTINGS["seg7_ramp"].allowed == "0.1 – 20.0 °C/min"
    assert SETTINGS["seg0_soak"].allowed == "0 – 1440 min"
    assert SETTINGS["o2_limit"].allowed == "5 – 1000 ppm"
    assert SETTINGS["unload_temp"].allowed == "50.0 – 150.0 °C"
    assert SETTINGS["segments"].allowed == "1 – 8"
    assert SETTINGS["seg7_soak"].address == 133


def test_whole_numbers_and_types() -> None:
    with pytest.raises(ValidationError):
        SETTINGS["seg0_soak"].check(2.5)
    with pytest.raises(ValidationError):
        SETTINGS["seg0_target"].check(True)
    with pytest.raises(ValidationError):
        SETTINGS["seg0_target"].validate("hot")
    with pytest.raises(ValidationError, match="read-only"):
        SETTINGS["wafer_c"].validate("20")
    assert SETTINGS["seg0_soak"].validate("9.0E1") == 90
    assert SETTINGS["seg0_target"].validate(" 150.5 ") == 150.5
    assert SETTINGS["door_lock"].validate("on") is True


def test_alarm_names_in_bit_order() -> None:
    assert OvenAlarm.from_word(0b100011).names() == ("OVER_TEMPERATURE", "DOOR_OPEN", "DEVIATION")
    assert OvenAlarm.from_word(0xFFC0).names() == ()


segments = st.lists(
    st.builds(
        Segment,
        st.integers(200, 3000).map(lambda r: r / 10),
        st.integers(1, 200).map(lambda r: r / 10),
        st.integers(0, 1440),
    ),
    min_size=1, max_size=8,
).map(tuple)


@given(segments, st.integers(5, 1000), st.integers(0, 1000), st.integers(0, 2**32 - 1))
def test_program_round_trip(segs: tuple[Segment, ...], o2: int, n2: int, batch: int) -> None:
    prog = OvenProgram(segs, o2_limit_ppm=o2, n2_flow_slm=n2 / 10, batch_no=batch)
    words = program_words(prog)
    assert len(words) == 9 + 3 * len(segs)
    assert words[7:9] == (0, 0)  # 108–109 reserved
    padded = list(words) + [0] * (33 - len(words))
    assert decode_program(padded) == prog


def test_program_the_oven_would_refuse_to_start_is_refused_before_sending() -> None:
    prog = OvenProgram((Segment(340.0, 5.0, 10),), high_limit_c=350.0)
    with pytest.raises(ValidationError, match="seg0_target"):
        program_words(prog)
    with pytest.raises(ValidationError, match="segments"):
        program_words(OvenProgram(()))


# --------------------------------------------------------------- wire protocol
class FakeOven:
    """A Modbus TCP server on 127.0.0.1:0 with a register bank; records request frames."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.inputs = [0] * 16
        self.holding = {a: 0 for a in range(100, 134)}
        self.coils = [False]
        self.discretes = [True, True, False, False, True]
        self.refuse: dict[tuple[int, int], int] = {}  # (fc, address) -> exception code
        self.mute: set[int] = set()  # function codes read and never answered
        self.hang_up_once: set[int] = set()  # function codes that close the connection once
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = _recv(conn, 7)
                if not head:
                    return
                tid, _, length, unit = struct.unpack(">HHHB", head)
                pdu = _recv(conn, length - 1)
                self.frames.append(head + pdu)
                if pdu[0] in self.hang_up_once:
                    self.hang_up_once.discard(pdu[0])
                    return
                if pdu[0] in self.mute:
                    continue
                reply = self._answer(pdu)
                conn.sendall(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)

    def _answer(self, pdu: bytes) -> bytes:
        fc, addr = pdu[0], struct.unpack(">H", pdu[1:3])[0]
        if (fc, addr) in self.refuse:
            return bytes([fc | 0x80, self.refuse[(fc, addr)]])
        if fc in (3, 4):
            count = struct.unpack(">H", pdu[3:5])[0]
            regs = [self.holding[a] for a in range(addr, addr + count)] if fc == 3 \
                else self.inputs[addr:addr + count]
            return bytes([fc, 2 * count]) + struct.pack(f">{count}H", *regs)
        if fc in (1, 2):
            count = struct.unpack(">H", pdu[3:5])[0]
            bits = (self.coils if fc == 1 else self.discretes)[addr:addr + count]
            return bytes([fc, 1, sum(int(b) << i for i, b in enumerate(bits))])
        if fc == 5:
            self.coils[addr] = pdu[3] == 0xFF
            return pdu
        if fc == 6:
            self.holding[addr] = struct.unpack(">H", pdu[3:5])[0]
            return pdu
        if fc == 16:
            count = struct.unpack(">H", pdu[3:5])[0]
            for i, v in enumerate(struct.unpack(f">{count}H", pdu[6:6 + 2 * count])):
                self.holding[addr + i] = 0 if addr + i in (108, 109) else v
            return pdu[:5]
        return bytes([fc | 0x80, 1])


def _recv(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


@pytest.fixture
def fake() -> Iterator[FakeOven]:
    server = FakeOven()
    yield server
    server.close()


@pytest.fixture
def oven(fake: FakeOven) -> Iterator[CureOven]:
    drv = CureOven.from_config({"transport": "tcp", "host": "127.0.0.1", "port": fake.port,
                                "unit": 1, "timeout_s": 1.0})
    drv.connect()
    yield drv
    drv.close()


def _pdus(fake: FakeOven) -> list[bytes]:
    """Request PDUs, after checking each MBAP header (protocol 0, length, unit 1, rising tid)."""
    out, tids = [], []
    for frame in fake.frames:
        tid, proto, length, unit = struct.unpack(">HHHB", frame[:7])
        assert (proto, unit, length) == (0, 1, len(frame) - 6)
        tids.append(tid)
        out.append(frame[7:])
    assert tids == sorted(set(tids))
    return out


@pytest.mark.timeout(10)
def test_upload_is_one_fc16_then_one_read_back(fake: FakeOven, oven: CureOven) -> None:
    fake.frames.clear()
    prog = OvenProgram((Segment(150.0, 5.0, 30), Segment(320.0, 3.0, 60)),
                       o2_limit_ppm=20, n2_flow_slm=50.0, high_limit_c=350.0,
                       unload_c=100.0, batch_no=0x00012345)
    oven.upload(prog)
    regs = [2, 20, 500, 3500, 1000, 0x0001, 0x2345, 0, 0, 1500, 50, 30, 3200, 30, 60]
    assert _pdus(fake) == [
        bytes([16, 0, 101, 0, 15, 30]) + struct.pack(">15H", *regs),
        bytes([3, 0, 101, 0, 15]),
    ]
    assert oven.read_program() == prog


@pytest.mark.timeout(10)
def test_upload_read_back_mismatch_raises(fake: FakeOven, oven: CureOven) -> None:
    real = fake._answer

    def sticky(pdu: bytes) -> bytes:  # the oven ignores the ramp of segment 0
        reply = real(pdu)
        fake.holding[111] = 77
        return reply

    fake._answer = sticky  # type: ignore[method-assign]
    with pytest.raises(Exception, match="111: wrote 50, reads 77"):
        oven.upload(OvenProgram((Segment(150.0, 5.0, 30),)))


@pytest.mark.timeout(10)
def test_commands_are_fc06_to_register_100_alone(fake: FakeOven, oven: CureOven) -> None:
    fake.frames.clear()
    oven.start()
    oven.pause()
    oven.resume()
    oven.abort()
    oven.ack_alarms()
    oven.lock_door(True)
    assert _pdus(fake) == [bytes([6, 0, 100, 0, n]) for n in (1, 2, 3, 4, 5)] + [
        bytes([5, 0, 0, 0xFF, 0])]


@pytest.mark.timeout(10)
def test_status_is_three_requests_and_decodes(fake: FakeOven, oven: CureOven) -> None:
    fake.inputs[:] = [1503, 0xFFF6, 455, 3, 2, 1, 0, 90, 0b10, 500, 0, 7, 1480, 0, 0, 2]
    fake.coils[0] = True
    fake.frames.clear()
    st_ = oven.status()
    assert _pdus(fake) == [bytes([4, 0, 0, 0, 16]), bytes([2, 0, 0, 0, 5]),
                           bytes([1, 0, 0, 0, 1])]
    assert (st_.chamber_c, st_.setpoint_c, st_.heater_pct, st_.o2_ppm) == (150.3, -1.0, 45.5, 3)
    assert (st_.state, st_.segment, st_.soak_left_s, st_.batch_no) == (OvenState.RUNNING, 1, 90, 7)
    assert st_.alarms.names() == ("DOOR_OPEN",) and st_.n2_flow_slm == 50.0
    assert st_.door_closed and st_.door_locked and st_.cassette_present
    assert not st_.contactor_closed and st_.lock_requested


@pytest.mark.timeout(10)
def test_readings_are_one_request_with_the_status_fields(fake: FakeOven, oven: CureOven) -> None:
    """A cure polls ``readings``: FC 04 on registers 0-15 alone, the same values as the
    status's (the alarm word's door bit included), no discrete input nor coil read."""
    fake.inputs[:] = [1503, 0xFFF6, 455, 3, 2, 1, 0, 90, 0b10, 500, 0, 7, 1480, 0, 0, 2]
    fake.frames.clear()
    rd = oven.readings()
    assert _pdus(fake) == [bytes([4, 0, 0, 0, 16])]
    st_ = oven.status()
    assert type(rd) is OvenReadings and isinstance(st_, OvenReadings)
    assert all(getattr(rd, f.name) == getattr(st_, f.name) for f in fields(OvenReadings))
    assert rd.state is OvenState.RUNNING and rd.alarms.names() == ("DOOR_OPEN",)
    fake.inputs[4] = 99  # no CV-25 state: garbled, as for a status
    with pytest.raises(CommsError, match="unexpected status values"):
        oven.readings()


@pytest.mark.timeout(10)
def test_refusal_is_tool_rejected_with_code_and_reason(fake: FakeOven, oven: CureOven) -> None:
    fake.refuse[(6, 100)] = 4
    fake.inputs[4] = int(OvenState.RUNNING)
    with pytest.raises(ToolRejected) as err:
        oven.start()
    assert err.value.code == 4 and "state is RUNNING" in err.value.text
    fake.inputs[4] = int(OvenState.IDLE)
    fake.discretes[1] = False  # door not locked
    with pytest.raises(InterlockError, match="door not locked"):
        oven.start()
    fake.refuse[(16, 101)] = 3
    with pytest.raises(ToolRejected) as err:
        oven.upload(OvenProgram((Segment(150.0, 5.0, 30),)))
    assert err.value.code == 3 and "illegal value" in err.value.text


@pytest.mark.timeout(10)
def test_out_of_range_sends_nothing(fake: FakeOven, oven: CureOven) -> None:
    fake.frames.clear()
    with pytest.raises(ValidationError, match=r"seg2_ramp = 25.0.*0.1 – 20.0 °C/min"):
        oven.set("seg2_ramp", 25.0)
    with pytest.raises(ValidationError):
        oven.upload(OvenProgram((Segment(150.0, 5.0, 2000),)))
    with pytest.raises(ValidationError, match="read-only"):
        oven.set("chamber_c", 20.0)
    assert fake.frames == []


@pytest.mark.timeout(10)
def test_connect_refused_is_comms_error_with_reason() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    drv = CureOven.from_config({"host": "127.0.0.1", "port": port, "timeout_s": 0.5})
    with pytest.raises(CommsError, match=f"cannot connect to 127.0.0.1:{port}: connection refused"):
        drv.connect()


@pytest.mark.timeout(10)
def test_start_is_never_resent_but_a_query_is_retried_after_a_drop(
    fake: FakeOven, oven: CureOven
) -> None:
    fake.mute.add(6)
    fake.frames.clear()
    t0 = time.monotonic()
    with pytest.raises(CommsError, match="no valid reply within 1 s"):
        oven.start()
    assert time.monotonic() - t0 < 1.8
    assert _pdus(fake) == [bytes([6, 0, 100, 0, 1])]  # exactly one START on the wire
    fake.hang_up_once.add(4)
    fake.frames.clear()
    assert oven.state() is OvenState.IDLE  # first read hung up on; reconnected and retried
    assert [f[7:] for f in fake.frames] == [bytes([4, 0, 4, 0, 1])] * 2
