"""One owner of the line, with real processes on the bundled simulators.

A `viaform run` subprocess drives a slow lot; while it cures, a second `viaform run` on
the same journal, and one on another journal but the same tools.yaml, must exit 2 at
once naming the owner, with nothing sent (the exposure tool's own `JOB:COUNt?` for every
wafer stays ≤ 1, read over a plain socket). `viaform tool oven reset` straight to the
oven is refused (the oven's state register, read with a plain pymodbus client, still
says RUNNING) while `viaform tool exposure status` works. A daemon that owns the line
but does not answer its probe (SIGSTOPped) still refuses a manual change. The serial
ports (etcher pty, oven RTU pty) admit one opener at a time.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from pymodbus.client import ModbusTcpClient
from typer.testing import CliRunner

from drivers.errors import CommsError
from drivers.oven import CureOven
from drivers.oven_types import OvenState
from drivers.serial_transport import SerialTransport
from sequencer.faces.cli import app
from simulators.runner import SimThread

from .flowkit import (
    REPO,
    SeqProcess,
    scpi,
    tool_state,
    wait_for,
    write_lot,
    write_tools_yaml,
)

SCALE = 600.0  # a cure lasts ~20 s of wall time: long enough to try everything meanwhile
WAFERS = ["O01", "O02"]
REFUSAL_S = 30.0  # a refused run exits long before this (it is the Python start-up)
runner = CliRunner()


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's own lock directory (inherited by the subprocesses)."""
    monkeypatch.setenv("VIAFORM_LOCK_DIR", str(tmp_path / "locks"))


def exposure_counts(sims: SimThread, wafers: list[str]) -> dict[str, int]:
    """The exposure tool's own job records, over a plain TCP socket."""
    return {w: int(scpi(sims, "exposure", f"JOB:COUN? {w}")) for w in wafers}


def oven_state_register(sims: SimThread) -> OvenState:
    """Input register 4 (program state), read with a plain pymodbus client."""
    host, port = sims.endpoints["oven"]["tcp"]
    client = ModbusTcpClient(host, port=port, timeout=2.0)
    try:
        assert client.connect()
        rr = client.read_input_registers(4, count=1, device_id=1)
        assert not rr.isError(), rr
        return OvenState(rr.registers[0])
    finally:
        client.close()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def refused(res_code: int, stderr: str, pid: int, command: str) -> str:
    """The refusal: one line after the journal's path (which every start prints first)."""
    banner, *rest = stderr.strip().splitlines()
    assert banner.startswith("viaform: journal /"), stderr
    line = one_line("\n".join(rest))
    assert res_code == 2, stderr
    assert f"is owned by {command} (pid {pid}, since " in line, line
    assert line.endswith("refused; nothing was sent"), line
    return line


@pytest.mark.timeout(180)
def test_a_second_owner_and_manual_changes_are_refused_while_a_run_cures(
        tmp_path: Path) -> None:
    lot = write_lot(tmp_path, "OWN-1", "FLOW-A", WAFERS)
    with SimThread(time_scale=SCALE, seed=3) as sims:
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        with SeqProcess([lot], tools, db, "owner") as run:
            wait_for(lambda: tool_state(sims, "oven") == "RUNNING" or not run.alive(), 120.0,
                     "the run's cure to start")
            assert run.alive(), run.result(5).stderr
            pid = run.proc.pid
            assert exposure_counts(sims, WAFERS) == {w: 1 for w in WAFERS}

            # the same journal, the same tools
            with SeqProcess([lot], tools, db, "second") as second:
                res = second.result(REFUSAL_S)
            line = refused(res.code, res.stderr, pid, "viaform run OWN-1")
            assert f"the journal {os.path.realpath(db)}" in line
            # another journal, the same tools.yaml (a new lot of fresh wafers)
            lot2 = write_lot(tmp_path, "OWN-2", "FLOW-A", ["P01", "P02"])
            with SeqProcess([lot2], tools, tmp_path / "other.db", "third") as third:
                res = third.result(REFUSAL_S)
            line = refused(res.code, res.stderr, pid, "viaform run OWN-1")
            assert line.startswith("viaform: the exposure (tcp:loopback:"), line
            assert f"journal {os.path.realpath(db)}" in line
            assert exposure_counts(sims, WAFERS + ["P01", "P02"]) == \
                {"O01": 1, "O02": 1, "P01": 0, "P02": 0}

            # a manual change straight to the oven: refused (busy: exit 1), oven untouched
            res = runner.invoke(app, ["tool", "oven", "reset", "--config", str(tools)])
            line = one_line(res.output)
            assert res.exit_code == 1, res.output
            assert f"the oven (tcp:loopback:{sims.endpoints['oven']['tcp'][1]}) is owned by " \
                   f"viaform run OWN-1 (pid {pid}, since " in line, line
            assert line.endswith("nothing was sent; wait for the run to end"), line
            for action in (["set", "n2_flow", "60"], ["clear-alarms"], ["errors"]):
                res = runner.invoke(app, ["tool", "oven", *action, "--config", str(tools)])
                assert res.exit_code == 1 and "wait for the run to end" in res.output, res.output
            res = runner.invoke(app, ["tool", "etcher", "raw", "*RST", "--config", str(tools)])
            assert res.exit_code == 1 and f"pid {pid}" in res.output, res.output
            assert oven_state_register(sims) == OvenState.RUNNING
            # read-only commands work meanwhile
            res = runner.invoke(app, ["tool", "exposure", "status", "--config", str(tools)])
            assert res.exit_code == 0 and "state" in res.output, res.output
            res = runner.invoke(app, ["tool", "oven", "get", "n2_flow", "--config", str(tools)])
            assert res.exit_code == 0, res.output
            assert run.alive()
            run.kill()
        # the kernel released the SIGKILLed run's locks: a manual change goes through now
        res = runner.invoke(app, ["tool", "exposure", "errors", "--config", str(tools)])
        assert res.exit_code == 0, res.output


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


@contextmanager
def daemon(tools: Path, db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``viaform daemon`` on ``port``; yields once its stderr names its address."""
    err = db.with_name("daemon.err")
    viaform = Path(sys.executable).with_name("viaform")
    with err.open("wb") as out:
        proc = subprocess.Popen([str(viaform), "daemon", "--config", str(tools), "--db",
                                 str(db), "--bind", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL,
                                cwd=REPO, env={**os.environ, "VIAFORM_TOKENS": ""})
    try:
        wait_for(lambda: re.search(r"on http://", err.read_text()) or proc.poll() is not None,
                 30.0, "the daemon to start")
        assert proc.poll() is None, err.read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(120)
def test_a_daemon_that_answers_slowly_still_refuses(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIAFORM_DAEMON")  # find the daemon as a user would: tools.yaml
    lot = write_lot(tmp_path, "OWN-3", "FLOW-A", ["D01"])
    with SimThread(time_scale=SCALE, seed=3) as sims:
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        port = _free_port()
        doc = yaml.safe_load(tools.read_text())
        doc["daemon"] = {"bind": f"127.0.0.1:{port}", "url": f"http://127.0.0.1:{port}"}
        tools.write_text(yaml.safe_dump(doc, sort_keys=False))
        with daemon(tools, db, port) as proc:
            # a run on the daemon's tools (its own journal): refused, naming the daemon
            with SeqProcess([lot], tools, tmp_path / "run.db", "run") as run:
                res = run.result(REFUSAL_S)
            refused(res.code, res.stderr, proc.pid, "viaform daemon")
            assert f"at http://127.0.0.1:{port}" in res.stderr
            os.kill(proc.pid, signal.SIGSTOP)  # alive, owns the line, answers nothing
            try:
                res = runner.invoke(app, ["tool", "oven", "reset", "--config", str(tools)])
                line = one_line(res.output)
                assert res.exit_code == 1, res.output
                assert f"owned by viaform daemon (pid {proc.pid}, since " in line, line
                assert line.endswith(f"go through the daemon (--daemon http://127.0.0.1:{port})"
                                     f", which serves these commands: `viaform tool oven take`, "
                                     f"then retry"), line
                res = runner.invoke(app, ["tool", "oven", "status", "--config", str(tools)])
                assert res.exit_code == 0 and "IDLE" in res.output, res.output
            finally:
                os.kill(proc.pid, signal.SIGCONT)
        assert oven_state_register(sims) == OvenState.IDLE
        assert exposure_counts(sims, ["D01"]) == {"D01": 0}


@pytest.mark.timeout(60)
def test_serial_ports_admit_one_opener(sims: SimThread) -> None:
    etcher_pty = sims.endpoints["etcher"].get("pty")
    oven_pty = sims.endpoints["oven"].get("rtu")
    assert etcher_pty and oven_pty, sims.endpoints
    first = SerialTransport(etcher_pty, timeout_s=1.0, tool="etcher")
    first.connect()
    try:
        second = SerialTransport(etcher_pty, timeout_s=1.0, tool="etcher")
        with pytest.raises(CommsError, match="exclusively lock"):
            second.connect()
    finally:
        first.close()
    again = SerialTransport(etcher_pty, timeout_s=1.0, tool="etcher")
    again.connect()
    again.close()

    rtu = {"transport": "rtu", "serial_port": oven_pty, "timeout_s": 1.0}
    oven = CureOven.from_config(rtu)
    oven.connect()
    try:
        with pytest.raises(CommsError, match="exclusively lock"):
            CureOven.from_config(rtu).connect()
        assert oven.status().state is not None  # the first opener still talks to the oven
    finally:
        oven.close()
