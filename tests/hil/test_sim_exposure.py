"""LX-365 simulator over a plain socket: syntax, replies, states, wafers, settings, jobs.

The client, the `cell` fixture and the drive-to-state helpers here are shared
with `test_sim_exposure_alarms.py` and `test_sim_exposure_transport.py`.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from simulators.runner import SimThread

DEFAULT_SCALE = 1000.0


class Client:
    """One TCP connection: LF-terminated lines, every read with a timeout."""

    def __init__(self, addr: tuple[str, int], timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def readline(self) -> str:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the tool")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def query(self, line: str) -> str:
        self.send(line)
        return self.readline()

    def errors(self) -> list[int]:
        """Drain the error queue; the codes, oldest first."""
        codes = []
        for _ in range(20):
            code = int(self.query("SYST:ERR?").split(",")[0])
            if code == 0:
                return codes
            codes.append(code)
        raise AssertionError(f"error queue never emptied: {codes}")

    def state(self) -> str:
        return self.query("SYST:STAT?")

    def wait_state(self, *states: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state in states:
                return state
            time.sleep(0.0005)
        raise AssertionError(f"never reached {states}; last {state}")

    def close(self) -> None:
        self.sock.close()


class Cell:
    """The running simulator: clients, material handling, faults, the world and the clock."""

    def __init__(self, sims: SimThread) -> None:
        self.sims = sims
        self.addr: tuple[str, int] = sims.endpoints["exposure"]["tcp"]
        self.clients: list[Client] = []

    def client(self, timeout: float = 2.0) -> Client:
        c = Client(self.addr, timeout)
        self.clients.append(c)
        return c

    def place(self, wafer_id: str, film_um: float = 10.0) -> None:
        """Create the wafer in the stocker and move it to the cell's load position."""
        self.sims.call(self.sims.world.add_wafers, [wafer_id], film_um)
        self.sims.call(self.sims.world.transfer, [wafer_id], "exposure")

    def transfer(self, wafer_id: str, to: str) -> None:
        self.sims.call(self.sims.world.transfer, [wafer_id], to)

    def wafer(self, wafer_id: str) -> dict[str, Any]:
        return self.sims.call(lambda: self.sims.world.wafer(wafer_id).to_json())

    def fault(self, name: str, **params: Any) -> None:
        self.sims.call(self.sims.faults["exposure"].inject, name, **params)

    def clear(self, name: str | None = None) -> None:
        self.sims.call(self.sims.faults["exposure"].clear, name)

    def now(self) -> float:
        return self.sims.clock.now()

    def close(self) -> None:
        for c in self.clients:
            c.close()


@pytest.fixture
def cell(request: pytest.FixtureRequest) -> Iterator[Cell]:
    """A fresh exposure simulator (time scale from ``@pytest.mark.sim_time_scale``)."""
    marker = request.node.get_closest_marker("sim_time_scale")
    scale = float(marker.args[0]) if marker else DEFAULT_SCALE
    with SimThread(time_scale=scale, only={"exposure"}, seed=7) as sims:
        c = Cell(sims)
        try:
            yield c
        finally:
            c.close()


def loaded(cell: Cell, c: Client, wafer_id: str = "W01", film_um: float = 10.0) -> None:
    """REMOTE, a wafer placed and loaded: READY."""
    cell.place(wafer_id, film_um)
    c.send("SYST:REM;:WAF:LOAD " + wafer_id)
    assert c.query("*OPC?") == "1"
    assert c.state() == "READY"


def exposed(cell: Cell, c: Client, wafer_id: str = "W01", dose: float = 318.0) -> None:
    loaded(cell, c, wafer_id)
    c.send(f"EXP:DOSE {dose};:EXP:STAR")
    assert c.query("*OPC?") == "1"
    assert c.state() == "EXPOSED"


def complete(cell: Cell, c: Client, wafer_id: str = "W01", dose: float = 318.0) -> None:
    exposed(cell, c, wafer_id, dose)
    c.send("DEV:STAR")
    assert c.query("*OPC?") == "1"
    assert c.state() == "COMPLETE"


# ====================================================================== power-on, replies
pytestmark = pytest.mark.timeout(30)


def test_power_on_state_and_read_only_values(cell: Cell) -> None:
    c = cell.client()
    assert re.fullmatch(r"VIAFAB,LX-365,[^,]+,[^,]+", c.query("*IDN?"))
    assert c.query("SYST:STAT?;:SYST:CONT?;:WAF:ID?;:FILM:THICK?") == "IDLE;LOCAL;NONE;0.0"
    assert c.query("JOB:LAST?") == "0,NONE,NONE,NONE,0.0,-1"
    assert c.query("*ESR?") == "128"
    assert c.query("SYST:ERR?") == '0,"No error"'
    assert c.query("EXP:FIEL?;:RET:CAT?") == "52;VIA-200,VIA-150"
    assert c.query("RET:SEL?;:EXP:DOSE?;FOC?;:DEV:TIME?") == "VIA-200;300.0;0.0;90"
    intensity = c.query("EXP:INT?")
    assert re.fullmatch(r"\d+\.\d", intensity) and 950.0 <= float(intensity) <= 1000.0
    assert c.query("ALARm?") == "NONE"
    assert c.query("*TST?") == "0"
    boot = c.query("SYST:BOOT?")
    assert re.fullmatch(r"\d+", boot)
    with SimThread(time_scale=10, only={"exposure"}) as other:
        c2 = Client(other.endpoints["exposure"]["tcp"])
        assert c2.query("SYST:BOOT?") != boot  # a new power-on
        c2.close()


def test_syntax_case_long_short_and_terminators(cell: Cell) -> None:
    c = cell.client()
    c.send("exposure:dose 320")
    assert c.query("EXP:DOSE?") == "320.0"
    assert c.query("Exposure:Dose?;:exp:dose?;:EXPOSURE:DOSE?") == "320.0;320.0;320.0"
    c.sock.sendall(b"\n\r\n  \nEXP:DOSE?\r\n")  # blank lines ignored, CR before LF ignored
    assert c.readline() == "320.0"
    assert c.query("EXP:DOSE 3.2E2;DOSE?;:EXP:DOSE +330.0;DOSE?") == "320.0;330.0"
    assert c.query("EXP:DOSE 300;FOC 1.5;DOSE?;FOC?") == "300.0;1.5"  # relative after ;
    assert c.errors() == []


def test_a_failing_command_stops_the_line_and_sends_earlier_replies(cell: Cell) -> None:
    c = cell.client()
    assert c.query("EXP:DOSE 50;:EXP:DOSE?;:EXP:DOSE 5000;:EXP:FOC 2;:EXP:FOC?") == "50.0"
    assert c.query("EXP:DOSE?;FOC?") == "50.0;0.0"  # -222 changed nothing, FOC never ran
    assert c.errors() == [-222]
    assert c.query("EXP:DOSE?;:NOPE?;:EXP:FOC?") == "50.0"  # failed query sends nothing
    assert c.errors() == [-113]


@pytest.mark.parametrize(
    "line, code",
    [
        ("EXP:DOSE", -109),
        ("EXP:DOSE 1,2", -108),
        ("SYST:STAT? 1", -108),
        ("EXP:DOSE abc", -224),
        ("EXP:DOSE 1e", -224),
        ("EXP:DOSES 100", -113),
        ("EXP::DOSE 100", -102),
        ('WAF:LOAD "W01', -102),
        ("WAF:LOAD W 01", -224),
        ("JOB:COUN? bad#id", -224),
        ("EXP:FIEL 60", -113),  # read only: there is no command form
    ],
)
def test_error_codes(cell: Cell, line: str, code: int) -> None:
    c = cell.client()
    c.send(line)
    assert c.errors() == [code]


def test_error_queue_overflow_and_esr_bits(cell: Cell) -> None:
    c = cell.client()
    c.query("*ESR?")
    for i in range(20):
        c.send(f"BOGUS{i}")
    assert c.query("*STB?") == "4"
    codes = c.errors()
    assert codes == [-113] * 15 + [-350]
    assert int(c.query("*ESR?")) == (1 << 5) | (1 << 3)  # command error + device (-350)
    c.send("EXP:DOSE 1")
    assert c.query("*ESR?") == str(1 << 4)  # -222: execution error
    c.send("WAF:LOAD W01")  # LOCAL: -221
    assert c.query("*ESR?") == str(1 << 4)
    c.send("SYST:REM;:WAF:LOAD W01")  # no wafer at the load position: +204
    assert c.query("*ESR?") == str(1 << 3)
    assert c.errors() == [-222, -221, 204]


def test_cls_ese_sre_stb(cell: Cell) -> None:
    c = cell.client()
    c.send("BOGUS")
    c.send("*ESE 32;*SRE 32")
    assert c.query("*ESE?;*SRE?") == "32;32"
    assert int(c.query("*STB?")) == 4 | 32 | 64
    c.send("*CLS")
    assert c.query("*STB?;*ESR?;SYST:ERR?") == '0;0;0,"No error"'


# ====================================================================== control state
def test_local_refuses_starts_but_allows_settings_and_queries(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    for line in ("WAF:LOAD W01", "WAF:UNL", "EXP:STAR", "DEV:STAR"):
        c.send(line)
        assert c.errors() == [-221], line
    assert c.query("SYST:STAT?;:JOB:LAST?") == "IDLE;0,NONE,NONE,NONE,0.0,-1"
    c.send("EXP:DOSE 400;:ABOR;:ALARM:CLEAR")
    assert c.query("EXP:DOSE?") == "400.0"
    assert c.errors() == []
    c.send("SYST:REM")
    assert c.query("SYST:CONT?") == "REMOTE"
    c.send("*RST")
    assert c.query("SYST:CONT?;:EXP:DOSE?") == "REMOTE;300.0"  # *RST keeps control state
    c.close()
    c2 = cell.client()
    assert c2.query("SYST:CONT?") == "REMOTE"  # survives a dropped connection
    c2.send("SYST:LOC")
    assert c2.query("SYST:CONT?") == "LOCAL"


# ====================================================================== states and timing
def test_full_cycle_states_results_and_world(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01", film_um=10.0)
    assert c.query("SYST:REM;:WAF:LOAD W01;:SYST:STAT?;:WAF:ID?") == "LOADING;W01"
    assert c.query("*OPC?") == "1"
    assert c.query("SYST:STAT?") == "READY"
    assert abs(float(c.query("FILM:THICK?")) - 10.0) < 0.1
    assert c.query("EXP:DOSE 318;:EXP:STAR;:SYST:STAT?") == "EXPOSING"
    w = cell.wafer("W01")
    assert (w["exposures"], w["dose_mj_cm2"]) == (1, 318.0)
    c.query("*OPC?")
    assert c.query("SYST:STAT?") == "EXPOSED"
    assert c.query("DEV:STAR;:SYST:STAT?") == "DEVELOPING"
    assert c.wait_state("MEASURING", "COMPLETE") in ("MEASURING", "COMPLETE")
    c.query("*OPC?")
    assert c.state() == "COMPLETE"
    depth, residual, cd = (float(x) for x in c.query("RES:DEPT?;RES?;CD?").split(";"))
    # PROCESS.md: 10 um film, E0 400, dose 318 -> r = 0.20; top 9.5, residual 2.0
    assert residual == pytest.approx(2.0, abs=0.1)
    assert depth == pytest.approx(7.5, abs=0.1)
    assert cd == pytest.approx(20.0, abs=1.0)  # VIA-200
    w = cell.wafer("W01")
    assert w["developed"] == 1
    assert w["top_um"] == pytest.approx(9.5)
    assert w["residual_pre_cure_um"] == pytest.approx(2.0, abs=0.02)
    assert 1.0 <= w["spread_max"] <= 1.4
    events = [h["event"] for h in w["history"] if h["tool"] == "exposure"]
    assert any("develop done" in e for e in events)
    c.send("WAF:UNL")
    assert c.query("*OPC?;:SYST:STAT?;:WAF:ID?;:FILM:THICK?") == "1;IDLE;NONE;0.0"
    assert c.query("RES:DEPT?") == f"{depth:.2f}"  # readable until the next LOAD
    cell.transfer("W01", "stocker")  # the wafer is back at the load position
    assert c.errors() == []


@pytest.mark.parametrize(
    "film, dose, residual",
    [
        (10.0, 500.0, 0.0),  # above E0: cleared
        (10.0, 100.0, 9.5),  # below E_th: no concave portion (dark loss only)
        (20.0, 318.0, 16.0),  # E0 = 800 for 20 um: r = 2 log10(800/318) = 0.80
    ],
)
def test_contrast_curve(cell: Cell, film: float, dose: float, residual: float) -> None:
    c = cell.client()
    cell.place("W01", film_um=film)
    c.send(f"SYST:REM;:EXP:DOSE {dose};:WAF:LOAD W01")
    c.query("*OPC?")
    c.send("EXP:STAR;*WAI;:DEV:STAR;*WAI")
    assert c.query("SYST:STAT?") == "COMPLETE"
    assert float(c.query("RES:RES?")) == pytest.approx(residual, abs=0.1)
    assert float(c.query("RES:DEPT?")) == pytest.approx(film * 0.95 - residual, abs=0.1)
    if residual >= film * 0.95:
        assert c.query("RES:CD?") == "0.00"  # no opening to measure


Window = tuple[float, float]


def _entries(c: Client, cell: Cell, line: str, until: str) -> dict[str, Window]:
    """Run ``line`` (a start); for each state seen, the tool-time window it was entered in."""
    polls: list[tuple[float, str, float]] = []
    t0 = cell.now()
    started = c.query(line + ";:SYST:STAT?")
    polls.append((t0, started, cell.now()))
    deadline = time.monotonic() + 5.0
    while polls[-1][1] != until:
        assert time.monotonic() < deadline, polls[-1]
        before = cell.now()
        state = c.state()
        polls.append((before, state, cell.now()))
    entries: dict[str, Window] = {started: (t0, polls[0][2])}
    for (prev_before, prev, _), (_, state, after) in zip(polls, polls[1:], strict=False):
        if state != prev and state not in entries:
            entries[state] = (prev_before, after)  # it changed after the earlier poll began
    return entries


def _assert_duration(start: Window, end: Window, nominal: float) -> None:
    """The true duration lies in [end.lo - start.hi, end.hi - start.lo]: it must meet +-10 %."""
    lo, hi = end[0] - start[1], end[1] - start[0]
    assert lo <= 1.1 * nominal and hi >= 0.9 * nominal, (lo, hi, nominal)


@pytest.mark.sim_time_scale(200)
def test_durations_in_tool_time(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    c.send("SYST:REM;:DEV:TIME 30;:EXP:DOSE 1000")
    seen = _entries(c, cell, "WAF:LOAD W01", "READY")
    _assert_duration(seen["LOADING"], seen["READY"], 20.0)
    intensity = float(c.query("EXP:INT?"))
    seen = _entries(c, cell, "EXP:STAR", "EXPOSED")
    _assert_duration(seen["EXPOSING"], seen["EXPOSED"], 52 * (1000.0 / intensity + 0.25))
    seen = _entries(c, cell, "DEV:STAR", "COMPLETE")
    _assert_duration(seen["DEVELOPING"], seen["MEASURING"], 30.0)
    _assert_duration(seen["MEASURING"], seen["COMPLETE"], 10.0)
    seen = _entries(c, cell, "WAF:UNL", "IDLE")
    _assert_duration(seen["UNLOADING"], seen["IDLE"], 15.0)


def test_start_changes_state_before_the_next_line_from_any_connection(cell: Cell) -> None:
    a, b = cell.client(), cell.client()
    cell.place("W01")
    a.send("SYST:REM;:WAF:LOAD W01")
    assert b.state() != "IDLE"
    a.query("*OPC?")
    a.send("EXP:DOSE 2000;:EXP:STAR")
    b.send("WAF:UNL")  # refused: the exposure (117 tool s) runs
    assert b.errors() == [-221]


def test_opc_sets_esr_bit_0_when_the_operation_finishes(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    c.query("*ESR?")
    c.send("SYST:REM;:WAF:LOAD W01;*OPC")
    c.wait_state("READY")
    deadline = time.monotonic() + 2
    while c.query("*ESR?") != "1":
        assert time.monotonic() < deadline
    c.send("*WAI")  # nothing pending: returns at once
    assert c.query("*OPC?") == "1"


# ====================================================================== wafer handling
def test_load_without_a_wafer_is_204_and_nothing_happens(cell: Cell) -> None:
    c = cell.client()
    c.send("SYST:REM;:WAF:LOAD W01")
    assert c.query("SYST:STAT?;:WAF:ID?;:JOB:LAST?") == "IDLE;NONE;0,NONE,NONE,NONE,0.0,-1"
    assert c.errors() == [204]


def test_quoted_id_and_id_mismatch_is_loaded_and_logged(cell: Cell) -> None:
    c = cell.client()
    cell.place("W02")
    c.send('SYST:REM;:WAF:LOAD "W-99.a_1"')
    c.query("*OPC?")
    assert c.query("SYST:STAT?;:WAF:ID?") == "READY;W-99.a_1"
    c.send("EXP:STAR")
    assert c.query("JOB:LAST?").split(",")[1] == "W-99.a_1"
    assert c.query('JOB:COUN? "W-99.a_1";COUN? W-99.a_1;COUN? w-99.a_1') == "1;1;0"
    events = [h["event"] for h in cell.wafer("W02")["history"]]
    assert any("mismatch" in e for e in events)
    assert cell.wafer("W02")["exposures"] == 1  # the physical wafer was exposed


def test_load_position_holds_one_wafer_and_the_chuck_cannot_be_taken(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    cell.sims.call(cell.sims.world.add_wafers, ["W02"])
    with pytest.raises(Exception, match="load position"):
        cell.transfer("W02", "exposure")
    assert c.query("SYST:REM;:WAF:LOAD W01;:SYST:STAT?") == "LOADING"
    with pytest.raises(Exception, match="chuck"):
        cell.transfer("W01", "stocker")
    cell.transfer("W02", "exposure")  # the load position is free while W01 is on the chuck
    c.query("*OPC?")
    c.send("WAF:UNL")  # nowhere to put W01
    assert c.query("SYST:STAT?") == "READY"
    assert c.errors() == [-221]
    cell.transfer("W02", "stocker")
    c.send("WAF:UNL")
    c.query("*OPC?")
    assert c.state() == "IDLE"
    cell.transfer("W01", "stocker")
    assert cell.wafer("W01")["location"] == "stocker"


def test_unload_refused_while_running_and_allowed_from_exposed(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    c.send("SYST:REM;:WAF:LOAD W01;:WAF:UNL")
    assert c.errors() == [-221]
    c.query("*OPC?")
    c.send("EXP:DOSE 2000;:EXP:STAR;:WAF:UNL")
    assert c.errors() == [-221]
    c.query("*OPC?")
    c.send("DEV:TIME 180;:DEV:STAR;:WAF:UNL")
    assert c.errors() == [-221]
    c.send("ABOR;:WAF:UNL;:WAF:UNL")  # the second one: UNLOADING
    assert c.errors() == [-221]
    c.query("*OPC?")
    assert c.state() == "IDLE"
    cell.transfer("W01", "stocker")
    exposed(cell, c, "W02")
    c.send("WAF:UNL")
    c.query("*OPC?")
    assert c.query("SYST:STAT?;:SYST:ERR?") == 'IDLE;0,"No error"'


# ====================================================================== settings
SETTINGS = [
    # header, good value, its reply, default reply, bad values (code)
    ("RET:SEL", "via-150", "VIA-150", "VIA-200", [("VIA-999", -224)]),
    ("EXP:DOSE", "2.0E3", "2000.0", "300.0", [("9.9", -222), ("2000.1", -222), ("x", -224)]),
    ("EXP:FOC", "-10", "-10.0", "0.0", [("10.05", -222), ("-11", -222)]),
    ("DEV:TIME", "30", "30", "90", [("29", -222), ("181", -222), ("90.5", -224)]),
]


@pytest.mark.parametrize("header, good, reply, default, bad", SETTINGS)
def test_settings_ranges_and_defaults(
    cell: Cell, header: str, good: str, reply: str, default: str, bad: list[tuple[str, int]]
) -> None:
    c = cell.client()
    assert c.query(header + "?") == default
    for value, code in bad:
        c.send(f"{header} {value}")
        assert c.errors() == [code], value
        assert c.query(header + "?") == default  # changed nothing
    c.send(f"{header} {good}")
    assert c.query(header + "?") == reply
    assert c.errors() == []
    c.send("*RST")
    assert c.query(header + "?") == default


def test_settings_refused_in_other_states_develop_time_also_in_exposed(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    c.send("SYST:REM;:WAF:LOAD W01")
    for header, value, _, _, _ in SETTINGS:
        c.send(f"{header} {value}")
        assert c.errors() == [-221], header
    c.query("*OPC?")
    c.send("EXP:DOSE 600;:EXP:STAR")
    c.query("*OPC?")
    assert c.state() == "EXPOSED"
    c.send("DEV:TIME 45")
    assert c.query("DEV:TIME?") == "45"
    for header, value, *_ in SETTINGS[:3]:
        c.send(f"{header} {value}")
        assert c.errors() == [-221], header
    assert c.query("EXP:DOSE?;FOC?") == "600.0;0.0"  # queries work in every state


# ====================================================================== jobs, results, abort, reset
def test_job_records(cell: Cell) -> None:
    c = cell.client()
    cell.place("W01")
    c.send("SYST:REM;:WAF:LOAD W01")
    c.query("*OPC?")
    c.send("DEV:STAR")  # refused (READY): creates no job
    assert c.errors() == [-221]
    assert c.query("JOB:LAST?") == "0,NONE,NONE,NONE,0.0,-1"
    assert c.query("EXP:DOSE 318.25;:EXP:STAR;:JOB:LAST?") == "1,W01,EXPOSE,RUNNING,318.2,-1"
    c.query("*OPC?")
    assert re.fullmatch(r"1,W01,EXPOSE,DONE,318\.2,\d+", c.query("JOB:LAST?"))
    assert c.query("DEV:STAR;:JOB:LAST?") == "2,W01,DEVELOP,RUNNING,0.0,-1"
    c.query("*OPC?")
    age0 = int(c.query("JOB:LAST?").split(",")[-1])
    time.sleep(0.05)  # 50 tool seconds
    last = c.query("JOB:LAST?").split(",")
    assert last[:4] == ["2", "W01", "DEVELOP", "DONE"] and int(last[-1]) >= age0 + 40
    assert c.query("JOB:COUN? W01;COUN? NEVER") == "1;0"
    c.send("*RST")  # job records survive, numbering continues
    c.send("WAF:UNL")
    c.query("*OPC?")
    cell.transfer("W01", "stocker")
    cell.transfer("W01", "exposure")
    c.send("WAF:LOAD W01")
    c.query("*OPC?")
    assert c.query("EXP:STAR;:JOB:LAST?;:JOB:COUN? W01") == "3,W01,EXPOSE,RUNNING,300.0,-1;2"


def test_results_readable_from_complete_until_next_load(cell: Cell) -> None:
    c = cell.client()
    for q in ("RES:DEPT?", "RES:RES?", "RES:CD?"):
        c.send(q)
    assert c.errors() == [-221] * 3
    exposed(cell, c)
    c.send("RES:DEPT?")
    assert c.errors() == [-221]
    c.send("DEV:STAR;*WAI;:WAF:UNL;*WAI")
    assert re.fullmatch(r"\d+\.\d\d;\d+\.\d\d;\d+\.\d\d", c.query("RES:DEPT?;RES?;CD?"))
    c.send("WAF:LOAD W01")
    c.send("RES:DEPT?")
    assert c.errors() == [-221]


def test_abort_exposure_records_partial_exposure_and_needs_unload(cell: Cell) -> None:
    c = cell.client()
    loaded(cell, c)
    c.send("ABOR")  # nothing running: nothing happens
    assert c.query("SYST:STAT?;:SYST:ERR?") == 'READY;0,"No error"'
    c.send("EXP:DOSE 2000;:EXP:STAR")
    time.sleep(0.03)
    assert c.query("ABOR;:SYST:STAT?;:JOB:LAST?").startswith("ALARM;1,W01,EXPOSE,ABORTED,2000.0,")
    c.send("ALARM:CLEAR;:EXP:STAR")
    assert c.query("SYST:STAT?;:ALARM?") == "ALARM;NONE"
    assert c.errors() == [-221]
    w = cell.wafer("W01")
    assert w["exposures"] == 1
    assert any("exposure aborted" in h["event"] for h in w["history"])
    c.send("WAF:UNL")
    assert c.query("*OPC?;:SYST:STAT?") == "1;IDLE"


def test_rst_aborts_keeps_queue_jobs_control_wafer(cell: Cell) -> None:
    c = cell.client()
    loaded(cell, c)
    c.send("BOGUS")
    c.send("EXP:DOSE 2000;FOC 3;:EXP:STAR")
    c.send("*RST")
    assert c.query("SYST:STAT?;:WAF:ID?;:SYST:CONT?") == "ALARM;W01;REMOTE"
    assert c.query("JOB:LAST?").startswith("1,W01,EXPOSE,ABORTED,2000.0,")
    assert c.query("EXP:DOSE?;FOC?") == "300.0;0.0"
    assert c.errors() == [-113]
    assert c.query("*OPC?") == "1"  # nothing pending: the shutter is closed, the job stopped
    c.send("WAF:UNL")
    c.query("*OPC?")
    c.send("*RST")
    assert c.query("SYST:STAT?") == "IDLE"


def test_rst_on_an_idle_wafer_returns_to_its_state_after_alarm_clear(cell: Cell) -> None:
    c = cell.client()
    loaded(cell, c)
    c.send("*RST")
    assert c.state() == "ALARM"
    c.send("ALARM:CLEAR")
    assert c.state() == "READY"  # no job was aborted
