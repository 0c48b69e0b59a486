"""`power_cycle`: each simulated tool reboots as its manual's power-on says, the world stays.

Over the real transports with plain clients (sockets, pyserial on the etcher's pty, pymodbus
and a raw Modbus socket for the oven), never our drivers. The power cycle is injected the
three ways a user or a test can: the control port (exposure), the fault table itself
(etcher) and `viaform sim fault` (oven). What is asserted is what a host relies on to see
a reboot (connection dropped, new `SYSTem:BOOT?`, ESR bit 7, empty records) and what the
world must keep (the wafer where it was, its physics as far as the process got, the lost
job never finished later).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import serial
from pymodbus.client import ModbusTcpClient
from typer.testing import CliRunner

from sequencer.faces.cli import app
from simulators.oven_registers import POWER_ON
from simulators.runner import SimThread

pytestmark = pytest.mark.timeout(60)


class Line:
    """A raw SCPI client: one line out, one reply line back (LF or CR LF)."""

    def __init__(self, addr: tuple[str, int], timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def ask(self, line: str) -> str:
        self.send(line)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the tool")
            self.buf += chunk
        reply, self.buf = self.buf.split(b"\n", 1)
        return reply.rstrip(b"\r").decode()

    def wait(self, state: str, wall_s: float = 10.0) -> None:
        deadline = time.monotonic() + wall_s
        while (now := self.ask("SYST:STAT?")) != state:
            assert time.monotonic() < deadline, f"not {state} within {wall_s} s: {now}"
            time.sleep(0.005)

    def close(self) -> None:
        self.sock.close()


def closed(sock: socket.socket) -> bool:
    """True once the peer has closed (or reset) the connection; waits at most 3 s."""
    sock.settimeout(3.0)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def control(sims: SimThread, **request: Any) -> dict[str, Any]:
    """One JSON request to the control port over a plain socket."""
    with socket.create_connection(sims.endpoints["control"]["tcp"], timeout=3) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "control port closed the connection"
            data += chunk
    reply = json.loads(data)
    assert reply["ok"], reply
    return reply


def world_wafer(sims: SimThread, wid: str) -> dict[str, Any]:
    return control(sims, op="world")["world"]["wafers"][wid]


def put(sims: SimThread, wafers: list[str], to: str) -> None:
    control(sims, op="add_wafers", wafers=wafers)
    control(sims, op="transfer", wafers=wafers, to=to)


def boot_and_esr_cleared(c: Line) -> str:
    """The boot id now; the ESR read (and so cleared) first, so bit 7 later means a reboot."""
    c.ask("*ESR?")
    assert c.ask("*ESR?") == "0"
    return c.ask("SYST:BOOT?")


# ---------------------------------------------------------------- exposure (control port)
@pytest.mark.sim_time_scale(50)
def test_exposure_power_cycle_mid_exposure(fault_sims: SimThread) -> None:
    sims = fault_sims
    put(sims, ["W01"], "exposure")
    etcher = Line(sims.endpoints["etcher"]["tcp"])
    etcher_boot = etcher.ask("SYST:BOOT?")
    a, b = Line(sims.endpoints["exposure"]["tcp"]), Line(sims.endpoints["exposure"]["tcp"])
    boot = boot_and_esr_cleared(a)
    a.send("SYST:REM;:EXP:DOSE 318;:EXP:FOC 2;:WAF:LOAD W01")
    a.wait("READY")
    a.send("EXP:STAR")
    a.wait("EXPOSING")
    time.sleep(0.1)  # some fields exposed, not all (the exposure takes ~30 tool s = 0.6 s)
    control(sims, op="fault", tool="exposure", fault="power_cycle")

    assert closed(a.sock) and closed(b.sock)
    assert control(sims, op="faults")["faults"]["exposure"] == {}  # one-shot: nothing latched
    c = Line(sims.endpoints["exposure"]["tcp"])
    assert c.ask("SYST:BOOT?") != boot
    assert int(c.ask("*ESR?")) & 0x80
    assert c.ask("SYST:ERR?") == '0,"No error"'
    assert c.ask("JOB:COUN? W01;:JOB:LAST?") == "0;0,NONE,NONE,NONE,0.0,-1"
    assert c.ask("SYST:CONT?;:EXP:DOSE?;:EXP:FOC?") == "LOCAL;300.0;0.0"
    # the wafer is still on the chuck: the cell comes up in ALARM with no records of it
    assert c.ask("SYST:STAT?;:WAF:ID?;:ALARM?") == "ALARM;NONE;NONE"
    assert sims.call(lambda: sims.tools["exposure"].chuck) == "W01"
    after = world_wafer(sims, "W01")
    assert after["location"] == "exposure" and after["exposures"] == 1
    assert after["dose_mj_cm2"] == 318.0 and after["developed"] == 0
    doses = sims.call(lambda: list(sims.tools["exposure"].histories["W01"].field_doses))
    assert 0 < sum(1 for d in doses if d >= 318.0) < 52  # what the exposure reached, kept

    time.sleep(sims.clock.to_wall(40))  # past the lost exposure's end: it never completes
    assert c.ask("SYST:STAT?;:JOB:LAST?") == "ALARM;0,NONE,NONE,NONE,0.0,-1"
    assert sims.call(lambda: list(sims.tools["exposure"].histories["W01"].field_doses)) == doses
    assert not any("exposure done" in h["event"] for h in world_wafer(sims, "W01")["history"])

    # never processed silently: starts and loads are refused until the wafer is unloaded
    for line in ("SYST:REM", "EXP:STAR", "WAF:LOAD W01", "ALARM:CLE"):
        c.send(line)  # a refused command answers nothing; its error is queued
    assert c.ask("SYST:STAT?") == "ALARM"
    assert [c.ask("SYST:ERR?") for _ in range(3)] == [
        '-221,"Settings conflict"', '-221,"Settings conflict"', '0,"No error"']
    c.send("WAF:UNL")
    c.wait("IDLE")
    control(sims, op="transfer", wafers=["W01"], to="stocker")  # at the load position again
    assert world_wafer(sims, "W01")["exposures"] == 1
    assert etcher.ask("SYST:BOOT?") == etcher_boot  # the other tools did not reboot


# ---------------------------------------------------------------- etcher (fault table)
@pytest.mark.sim_tools("etcher")
@pytest.mark.sim_time_scale(100)
def test_etcher_power_cycle_mid_etch(fault_sims: SimThread) -> None:
    sims = fault_sims
    put(sims, ["W01"], "etcher")
    a = Line(sims.endpoints["etcher"]["tcp"])
    boot = boot_and_esr_cleared(a)
    a.send("ETCH:TIME 120;:RF:POW 400;:WAF:LOAD W01")
    a.wait("READY")
    a.send("ETCH:STAR")
    a.wait("ETCHING")
    time.sleep(sims.clock.to_wall(20))
    with serial.Serial(sims.endpoints["etcher"]["pty"], 9600, timeout=0.5) as pty:
        pty.write(b"SYST:BO")  # a partial line on the serial line when the power goes
        pty.flush()
        time.sleep(0.05)
        sims.call(sims.faults["etcher"].inject, "power_cycle")
        assert sims.call(lambda: dict(sims.faults["etcher"].active)) == {}

        assert closed(a.sock)
        c = Line(sims.endpoints["etcher"]["tcp"])
        assert c.ask("SYST:BOOT?") != boot
        assert int(c.ask("*ESR?")) & 0x80
        assert c.ask("SYST:ERR?") == '0,"No error"'
        assert c.ask("JOB:COUN? W01;:JOB:LAST?;:ETCH:STAT?") == "0;0,NONE,NONE,-1;ALARM,0,-1"
        assert c.ask("ETCH:TIME?;:RF:POW?;:RF:FORW?;:GAS:FLOW?") == "180;300.0;0.0;0.0,0.0"
        assert c.ask("WAF:ID?;:ALARM?;:RES:REM?") == "NONE;NONE;0.0"
        # the partial line died with the old boot: its tail arrives as a line of its own
        pty.write(b"OT?\r\nSYST:ERR?\r\n")
        assert pty.readline() == b'-113,"Undefined header"\r\n'

    inside = world_wafer(sims, "W01")
    assert inside["location"] == "etcher" and inside["etches"] == 1
    assert 0 < inside["removed_um"] < 1.0  # 20 s of RF at ~600 nm/min, kept as it was
    assert sims.call(lambda: sims.tools["etcher"].wafer.wafer_id) == "W01"
    time.sleep(sims.clock.to_wall(150))  # past the lost etch's programmed end
    assert c.ask("SYST:STAT?;:JOB:LAST?") == "ALARM;0,NONE,NONE,-1"
    assert world_wafer(sims, "W01")["removed_um"] == inside["removed_um"]

    for line in ("ETCH:STAR", "WAF:LOAD W01", "ALARM:CLE"):
        c.send(line)
    assert c.ask("SYST:STAT?") == "ALARM"
    assert [c.ask("SYST:ERR?") for _ in range(3)] == [
        '-221,"Settings conflict"', '-221,"Settings conflict"', '0,"No error"']
    c.send("WAF:UNL")
    c.wait("IDLE")
    control(sims, op="transfer", wafers=["W01"], to="stocker")
    assert world_wafer(sims, "W01")["etches"] == 1


# ---------------------------------------------------------------- oven (viaform sim fault)
IR_STATE, IR_O2, IR_ALARMS, IR_N2 = 4, 3, 8, 9
RUNNING, IDLE = 2, 0


def _ir(c: ModbusTcpClient) -> list[int]:
    rr = c.read_input_registers(0, count=16, device_id=1)
    assert not rr.isError(), rr
    return list(rr.registers)


def _wait_ir(c: ModbusTcpClient, ok: Callable[[list[int]], bool], wall_s: float) -> list[int]:
    deadline = time.monotonic() + wall_s
    while not ok(regs := _ir(c)):
        assert time.monotonic() < deadline, regs
        time.sleep(0.01)
    return regs


def _cli(sims: SimThread, tmp_path: Path, *args: str) -> str:
    host, port = sims.endpoints["control"]["tcp"]
    cfg = tmp_path / "tools.yaml"
    cfg.write_text(f"time_scale: 300\nsim_control: {{host: {host}, port: {port}}}\n")
    result = CliRunner().invoke(app, ["sim", *args, "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.sim_tools("oven")
@pytest.mark.sim_time_scale(300)
def test_oven_power_cycle_mid_cure(fault_sims: SimThread, tmp_path: Path) -> None:
    sims = fault_sims
    put(sims, ["W01", "W02"], "oven")
    host, port = sims.endpoints["oven"]["tcp"]
    c = ModbusTcpClient(host, port=port, timeout=2, retries=0)
    assert c.connect()
    assert not c.write_registers(103, [800, 4000, 1000, 0, 7], device_id=1).isError()
    assert not c.write_coil(0, True, device_id=1).isError()
    assert not c.write_register(100, 1, device_id=1).isError()  # START batch 7
    _wait_ir(c, lambda r: r[IR_STATE] == RUNNING and r[0] >= 400, 20)  # heating, >= 40 C
    raw = socket.create_connection((host, port), timeout=3)

    _cli(sims, tmp_path, "fault", "oven", "power_cycle")
    warm_at = sims.call(lambda: sims.tools["oven"].o2_warm_at)  # power-on + the warm-up
    assert closed(raw)
    assert control(sims, op="faults")["faults"]["oven"] == {}
    c.close()
    c = ModbusTcpClient(host, port=port, timeout=2, retries=0)
    assert c.connect()
    regs = _ir(c)
    if sims.clock.now() < warm_at:  # read during the analyser's warm-up (docs/sim-oven.md)
        assert regs[IR_O2] == 65535
    assert regs[IR_STATE] == IDLE and regs[10:12] == [0, 0]  # batch 0: before the first START
    assert regs[1] == 0 and regs[2] == 0 and regs[5] == 0xFFFF and regs[15] == 0xFFFF
    assert regs[13:15] == [0, 0] and regs[IR_ALARMS] == 0
    assert regs[0] >= 350  # the chamber keeps its heat; it only cools from here
    holding = c.read_holding_registers(101, count=33, device_id=1).registers
    assert holding == [POWER_ON[a] for a in range(101, 134)]
    assert c.read_coils(0, count=1, device_id=1).bits[0] is False  # unlocked
    di = c.read_discrete_inputs(0, count=5, device_id=1).bits[:5]
    assert di == [True, False, False, False, True]  # closed, unlocked, heaters off, cassette

    for wid in ("W01", "W02"):
        w = world_wafer(sims, wid)
        assert w["location"] == "oven" and w["cure_batches"] == [7]
    later = _wait_ir(c, lambda r: r[IR_O2] != 65535, 15)  # warm: the real (low) O2 again
    assert sims.clock.now() >= warm_at
    assert later[IR_STATE] == IDLE and later[IR_N2] == 0 and later[0] < regs[0]
    assert not any("complete" in h["event"] for h in world_wafer(sims, "W01")["history"])
    assert _cli(sims, tmp_path, "clear", "oven").strip() == "oven: all faults cleared"
    c.close()


def test_power_cycle_is_listed_for_every_tool() -> None:
    result = CliRunner().invoke(app, ["sim", "faults"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert sum(ln.startswith("  power_cycle ") for ln in lines) == 3
