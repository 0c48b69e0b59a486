"""PE-200 simulator against its manual, over TCP and the pseudo-terminal, with plain clients."""

from __future__ import annotations

import socket
import time

import pytest
import serial

from simulators.world import TransferError

from .test_sim_etcher_support import etcher, load_ready, put_wafer, run_etch, wafer, wait_for

pytestmark = pytest.mark.timeout(30)

DEFAULTS = {
    "GAS:O2?": "90.0",
    "GAS:CF4?": "10.0",
    "PRES:SET?": "200.0",
    "RF:POW?": "300.0",
    "ETCH:TIME?": "180",
    "ETCH:OVER?": "30",
    "ETCH:ENDP?": "0",
    "ETCH:TARG?": "0.0",
}


def test_power_on_state_and_defaults() -> None:
    with etcher() as (_, c):
        assert c.ask("*IDN?").startswith("VIAFAB,PE-200,")
        assert c.ask("*ESR?") == "128"
        assert c.ask("SYST:STAT?;:WAF:ID?;:ALAR?") == "IDLE;NONE;NONE"
        assert c.ask("JOB:LAST?") == "0,NONE,NONE,-1"
        assert c.ask("ETCH:STAT?") == "IDLE,0,-1"
        assert c.ask("RF:FORW?;:RF:REFL?;:GAS:FLOW?") == "0.0;0.0;0.0,0.0"
        assert float(c.ask("PRES?")) > 700_000  # vented
        assert c.ask("RES:REM?;:RES:OPEN?;:OES:TRAC?") == "0.0;0;"
        for query, value in DEFAULTS.items():
            assert c.ask(query) == value, query
        assert c.err() == '0,"No error"'


@pytest.mark.parametrize(
    ("header", "bad", "good", "shown"),
    [
        ("GAS:O2", "200.1", "150", "150.0"),
        ("GAS:CF4", "-0.1", "2.0E1", "20.0"),
        ("PRESSURE:SETPOINT", "49.9", "+1000.0", "1000.0"),
        ("RF:POWER", "1000.1", "50", "50.0"),
        ("ETCH:TIME", "1801", "5", "5"),
        ("ETCH:OVERETCH", "101", "0", "0"),
        ("ETCH:TARGET", "20.1", "1.5", "1.5"),
    ],
)
def test_setting_ranges(header: str, bad: str, good: str, shown: str) -> None:
    with etcher() as (_, c):
        before = c.ask(f"{header}?")
        c.send(f"{header} {bad}")
        assert c.ask(f"{header}?") == before
        assert c.errors() == [-222]
        assert c.ask(f"{header} {good};:{header}?") == shown
        assert c.errors() == []


def test_setting_syntax_endpoint_and_paths() -> None:
    with etcher() as (_, c):
        assert c.ask("ETCH:ENDP ON;ENDP?;:ETCH:ENDP 0;:ETCH:ENDPOINT?") == "1;0"
        c.send("ETCH:ENDP MAYBE")
        c.send("ETCH:TIME 90.5")
        c.send("GAS:O2")
        c.send("GAS:O2 1,2")
        assert c.errors() == [-224, -224, -109, -108]
        assert c.ask("ETCH:TIME 60;OVER 20;:etch:time?;:ETCH:OVER?") == "60;20"


def test_cf4_fraction_rule() -> None:
    with etcher() as (_, c):
        assert c.ask("GAS:CF4 30;:GAS:CF4?") == "30.0"  # 30 / 120 = 25 % exactly
        c.send("GAS:O2 80")  # 30 / 110 > 25 %
        assert c.errors() == [-221]
        assert c.ask("GAS:O2?") == "90.0"
        c.send("GAS:CF4 0;:GAS:O2 0")  # lower both: CF4 first
        assert c.ask("GAS:FLOW?;:GAS:O2?;:GAS:CF4?") == "0.0,0.0;0.0;0.0"
        c.send("GAS:CF4 1")  # 1 / 1 = 100 %
        assert c.errors() == [-221]


def test_settings_refused_while_busy_and_start_refusals() -> None:
    with etcher() as (sims, c):
        c.send("ETCH:STAR")
        assert c.errors() == [-221]
        assert c.ask("JOB:LAST?;:SYST:STAT?") == "0,NONE,NONE,-1;IDLE"
        c.send("WAF:LOAD W01")  # nothing at the load position
        assert c.errors() == [305]
        assert c.ask("SYST:STAT?;:WAF:ID?") == "IDLE;NONE"
        put_wafer(sims)
        assert c.ask("WAF:LOAD W01;:SYST:STAT?") == "LOADING"
        c.send("GAS:O2 100")
        c.send("WAF:LOAD W01")
        c.send("WAF:UNL")
        assert c.errors() == [-221, -221, -221]
        assert c.ask("GAS:O2?") == "90.0"
        wait_for(c, "READY", 60, sims)
        sims.call(sims.faults["etcher"].inject, "door_open")
        c.send("ETCH:STAR")
        assert c.errors() == [301, 301]  # the door alarm itself, then the refused start
        assert c.ask("ALAR?;:SYST:STAT?") == "DOOR_OPEN;ALARM"
        assert c.ask("JOB:LAST?;:JOB:COUN? W01") == "0,NONE,NONE,-1;0"


def test_durations_in_tool_time() -> None:
    with etcher(scale=100) as (sims, c):
        put_wafer(sims)
        t0 = sims.clock.now()
        assert c.ask("WAF:LOAD W01;:SYST:STAT?") == "LOADING"
        t1 = wait_for(c, "PUMPING", 30, sims)
        t2 = wait_for(c, "READY", 60, sims)
        assert float(c.ask("PRES?")) <= 50.0
        c.send("ETCH:TIME 5;:ETCH:OVER 0;:ETCH:STAR")
        t3 = sims.clock.now()
        t4 = wait_for(c, "ETCHING", 30, sims)
        wait_for(c, "COMPLETE", 30, sims)
        t5 = sims.clock.now()
        assert c.ask("WAF:UNL;:SYST:STAT?") == "VENTING"
        t6 = wait_for(c, "IDLE", 60, sims)
        slack = 1.0  # polling latency in tool seconds at this scale
        assert 13.5 <= t1 - t0 <= 16.5 + slack
        assert 27.0 <= t2 - t1 <= 34.0 + slack  # (V/S)·ln(760 Torr / 50 mTorr) ≈ 30 s
        assert 9.0 <= t4 - t3 <= 11.0 + slack
        assert 27.0 <= t6 - t5 <= 33.0 + slack


def test_full_etch_with_endpoint_opens_vias_and_writes_the_world() -> None:
    with etcher() as (sims, c):
        load_ready(sims, c, residual_pre_cure=1.0)  # 0.75 um after cure → ~90 s at 500 nm/min
        assert c.ask("WAF:ID?") == "W01"
        c.send("ETCH:ENDP ON;:ETCH:TIME 180;:ETCH:OVER 30")
        status = run_etch(sims, c)
        state, elapsed, endpoint = status.split(",")
        mean_clear = 0.75 / 0.5 * 60  # 90 s
        assert state == "COMPLETE"
        assert mean_clear < int(endpoint) < 1.12 * mean_clear
        assert abs(int(elapsed) - 1.3 * int(endpoint)) <= 2  # overetch 30 % of actual main etch
        assert c.ask("JOB:LAST?").startswith("1,W01,DONE,")
        assert c.ask("RES:OPEN?") == "1"
        removed = float(c.ask("RES:REM?"))
        assert removed == pytest.approx(int(elapsed) * 0.5 / 60, abs=0.06)
        trace = [float(v) for v in c.ask("OES:TRAC?").split(",")]
        assert len(trace) == int(elapsed) // 2 + 1
        assert trace[0] == pytest.approx(20000, rel=0.01)
        assert trace[-1] == pytest.approx(trace[0] * 0.88, rel=0.01)  # open area 12 %
        assert c.ask("RF:FORW?;:GAS:FLOW?") == "0.0;0.0,0.0"  # RF and gas off
        assert float(c.ask("PRES?")) <= 50.0  # at base pressure until unload
        w = wafer(sims)
        assert (w["etches"], w["vias_open"], w["wiring_recess_um"]) == (1, True, 0.0)
        assert w["removed_um"] == pytest.approx(removed, abs=0.05)
        with pytest.raises(TransferError):  # still in the chamber
            sims.call(sims.world.transfer, ["W01"], "stocker")
        c.send("WAF:UNL")
        wait_for(c, "IDLE", 60, sims)
        assert c.ask("WAF:ID?;:RES:OPEN?;:JOB:COUN? W01;:JOB:COUN? \"W01\"") == "NONE;1;1;1"
        sims.call(sims.world.transfer, ["W01"], "stocker")


def test_no_endpoint_by_etch_time_and_blind_window() -> None:
    with etcher(scale=1000) as (sims, c):
        load_ready(sims, c, residual_pre_cure=1.0)
        c.send("ETCH:ENDP 1;:ETCH:TIME 40;:ETCH:OVER 50")
        assert run_etch(sims, c) == "COMPLETE,60,-1"  # main ran ETCH:TIME, overetch 50 % of it
        assert c.ask("RES:OPEN?") == "0"
        assert wafer(sims)["vias_open"] is False
        c.send("ETCH:STAR")  # COMPLETE is not READY
        assert c.errors() == [-221]
        c.send("WAF:UNL")
        wait_for(c, "IDLE", 60, sims)
        c.send("WAF:LOAD W01")
        wait_for(c, "READY", 60, sims)
        # second etch on the same wafer; a TARGet of 10 um blinds the monitor for
        # 0.5·10/rate = 600 s, past the clearing: no endpoint, full ETCH:TIME.
        c.send("ETCH:TARG 10;:ETCH:TIME 200;:ETCH:OVER 0")
        assert run_etch(sims, c, 600) == "COMPLETE,200,-1"
        assert c.ask("RES:OPEN?;:JOB:LAST?").startswith("1;2,W01,DONE")
        assert wafer(sims)["etches"] == 2


def test_flow_b_recess_and_uncured_rate() -> None:
    with etcher(scale=1000) as (sims, c):
        load_ready(sims, c, "WB", residual_pre_cure=0.0)  # first process opened it fully
        c.send("ETCH:ENDP 1;:ETCH:TIME 60;:ETCH:OVER 0")
        assert run_etch(sims, c) == "COMPLETE,60,-1"  # nothing to clear: no endpoint
        assert wafer(sims, "WB")["wiring_recess_um"] == pytest.approx(0.040, rel=0.02)
        removed_cured = float(c.ask("RES:REM?"))
        c.send("WAF:UNL")
        wait_for(c, "IDLE", 60, sims)
        sims.call(sims.world.transfer, ["WB"], "stocker")
        load_ready(sims, c, "WU", residual_pre_cure=2.0, cure=0.2)
        c.send("ETCH:TIME 60;:ETCH:OVER 0")
        run_etch(sims, c)
        assert float(c.ask("RES:REM?")) > 1.4 * removed_cured
        assert wafer(sims, "WU")["wiring_recess_um"] == 0.0


def test_readings_during_etch_and_opc() -> None:
    with etcher(scale=200) as (sims, c):
        put_wafer(sims)
        c.send("WAF:LOAD W01")
        assert c.ask("*OPC?;:SYST:STAT?") == "1;READY"
        c.send("RF:POW 400;:PRES:SET 300;:GAS:O2 100;:GAS:CF4 15;:ETCH:TIME 100")
        c.send("ETCH:STAR")
        wait_for(c, "ETCHING", 40, sims)
        assert c.ask("RF:FORW?") == "400.0"
        assert 0 < float(c.ask("RF:REFL?")) < 0.2 * 400
        o2, cf4 = (float(v) for v in c.ask("GAS:FLOW?").split(","))
        assert o2 == pytest.approx(100, rel=0.05) and cf4 == pytest.approx(15, rel=0.05)
        assert float(c.ask("PRES?")) == pytest.approx(300, rel=0.05)
        assert float(c.ask("OES:CO?")) > 20000  # faster than the reference recipe
        assert float(c.ask("OES:O?")) > 1000
        c.send("GAS:O2 50")
        assert c.errors() == [-221]
        assert c.ask("*OPC?;:SYST:STAT?") == "1;COMPLETE"
        assert c.ask("OES:CO?;:OES:O?") == "20.0;20.0"  # plasma off: dark counts


def test_abort_and_alarm_clear_semantics() -> None:
    with etcher() as (sims, c):
        load_ready(sims, c)
        c.send("ETCH:ABOR")
        assert c.errors() == [-221]  # nothing running
        c.send("ETCH:STAR")
        wait_for(c, "ETCHING", 40, sims)
        assert c.ask("ETCH:ABOR;:SYST:STAT?;:RF:FORW?") == "ALARM;0.0"
        assert c.ask("JOB:LAST?") .startswith("1,W01,ABORTED,")
        assert c.ask("ALAR?;:ALAR:CLE;:SYST:STAT?") == "NONE;ALARM"  # aborted: until unload
        c.send("ETCH:STAR")
        assert c.errors() == [-221]
        c.send("WAF:UNL")
        wait_for(c, "IDLE", 60, sims)
        assert wafer(sims)["removed_um"] > 0
        assert c.ask("JOB:COUN? W01;:JOB:COUN? other") == "1;0"


def test_rst_aborts_keeps_queue_and_jobs() -> None:
    with etcher() as (sims, c):
        c.send("GAS:O2 500")  # -222 stays queued across *RST
        load_ready(sims, c)
        c.send("ETCH:TIME 60;:ETCH:STAR")
        wait_for(c, "ETCHING", 40, sims)
        c.send("*RST")
        assert c.ask("SYST:STAT?;:RF:FORW?;:ETCH:TIME?") == "ALARM;0.0;180"
        assert c.ask("JOB:LAST?").startswith("1,W01,ABORTED")
        assert c.errors() == [-222]
        assert c.ask("ALAR:CLE;:SYST:STAT?") == "ALARM"
        c.send("WAF:UNL")
        wait_for(c, "IDLE", 60, sims)
        c.send("*RST")
        assert c.ask("SYST:STAT?;:JOB:LAST?").startswith("IDLE;1,W01,ABORTED")


def test_rst_with_wafer_and_no_job_returns_after_clear() -> None:
    with etcher() as (sims, c):
        load_ready(sims, c)
        assert c.ask("*RST;:SYST:STAT?") == "ALARM"
        assert c.ask("ALAR:CLE;:SYST:STAT?") == "READY"


def test_four_connections_share_one_instrument() -> None:
    with etcher() as (sims, c):
        addr = sims.endpoints["etcher"]["tcp"]
        others = [socket.create_connection(addr, timeout=2) for _ in range(3)]
        fifth = socket.create_connection(addr, timeout=2)
        assert fifth.recv(10) == b""  # accepted and closed at once
        others[0].sendall(b"GAS:O2 999\r\n")
        time.sleep(0.05)
        assert c.errors() == [-222]  # one error queue
        for s in others + [fifth]:
            s.close()


def test_pty_transport_crlf_and_lf() -> None:
    with etcher() as (sims, c):
        path = sims.endpoints["etcher"]["pty"]
        with serial.Serial(path, 9600, timeout=2) as port:
            port.write(b"*IDN?\r\n")
            assert port.read_until(b"\r\n").startswith(b"VIAFAB,PE-200,")
            port.write(b"ETCH:TIME 77\n")
            port.write(b"etch:time?\n")
            assert port.read_until(b"\r\n") == b"77\r\n"
            c.send("ETCH:TIME 78", end=b"\r\n")
            port.write(b"ETCH:TIME?\r\n")
            assert port.read_until(b"\r\n") == b"78\r\n"  # one instrument for both


def test_comms_faults_never_affect_a_running_etch() -> None:
    with etcher(scale=500) as (sims, c):
        load_ready(sims, c)
        faults = sims.faults["etcher"]
        assert c.ask("ETCH:TIME 60;:ETCH:STAR;:SYST:STAT?") == "STABILIZING"
        sims.call(faults.inject, "drop")
        with pytest.raises((ConnectionError, OSError)):
            c.ask("SYST:STAT?")
        addr = sims.endpoints["etcher"]["tcp"]
        from .test_sim_etcher_support import Tcp

        c2 = Tcp(addr, timeout=0.3)
        sims.call(faults.inject, "mute")
        c2.send("SYST:STAT?")
        with pytest.raises(socket.timeout):
            c2.read_raw()
        sims.call(faults.inject, "garble")
        sims.call(faults.clear, "mute")
        c2.send("*IDN?")
        assert not c2.read_raw().startswith(b"VIAFAB")
        sims.call(faults.clear, "garble")
        sims.call(faults.inject, "slow", delay_s=0.15)
        t0 = time.monotonic()
        c2.sock.settimeout(2)
        assert c2.ask("*IDN?").startswith("VIAFAB")
        assert time.monotonic() - t0 >= 0.15
        sims.call(faults.clear)
        wait_for(c2, "COMPLETE", 200, sims)
        assert c2.ask("JOB:LAST?").startswith("1,W01,DONE")
        c2.close()


def test_world_port_one_wafer_at_a_time() -> None:
    with etcher() as (sims, c):
        sims.call(sims.world.add_wafers, ["A", "B"])
        with pytest.raises(TransferError):
            sims.call(sims.world.transfer, ["A", "B"], "etcher")
        sims.call(sims.world.transfer, ["A"], "etcher")
        with pytest.raises(TransferError):
            sims.call(sims.world.transfer, ["B"], "etcher")
        sims.call(sims.world.transfer, ["A"], "stocker")  # not loaded: may be taken back
        sims.call(sims.world.transfer, ["B"], "etcher")
        assert c.ask("WAF:LOAD LABEL-B;:SYST:STAT?") == "LOADING"
        with pytest.raises(TransferError):
            sims.call(sims.world.transfer, ["B"], "stocker")
        assert c.ask("WAF:ID?") == "LABEL-B"
