"""`viaform sim` as its own process: it prints where each tool listens, serves until Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

VIAFORM = [sys.executable, "-m", "sequencer"]


def _config(tmp_path: Path, control_port: int = 0) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(
        "time_scale: 100\n"
        "exposure: {resource: 'TCPIP0::127.0.0.1::0::SOCKET', sim: {port: 0}}\n"
        "etcher: {url: 'socket://127.0.0.1:0', sim: {port: 0}}\n"
        "oven: {transport: tcp, host: 127.0.0.1, port: 502, sim: {port: 0}}\n"
        f"sim_control: {{host: 127.0.0.1, port: {control_port}}}\n"
    )
    return path


def _read_endpoints(proc: subprocess.Popen[str], timeout_s: float = 15) -> dict[str, str]:
    """The '  tool  tcp host:port  pty /dev/pts/N' lines up to the control port's."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while "control" not in found:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"`viaform sim` did not announce its ports; got {found}")
        line = proc.stdout.readline()
        match = re.match(r"\s+(\w+)\s+(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@pytest.mark.timeout(60)
def test_sim_process_serves_all_tools_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*VIAFORM, "sim", "--config", str(_config(tmp_path)), "--time-scale", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ep = _read_endpoints(proc)
        assert set(ep) == {"exposure", "oven", "etcher", "control"}
        assert "pty /dev/pts/" in ep["etcher"], "the etcher must also be served on a pty"
        assert "rtu /dev/pts/" in ep["oven"], "the oven must also be served as RTU on a pty"

        host, port = re.search(r"tcp (\S+):(\d+)", ep["exposure"]).groups()  # type: ignore[union-attr]
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.sendall(b"*IDN?\n")
            assert sock.recv(256).startswith(b"VIAFAB,LX-365,")

        control = int(re.search(r":(\d+)", ep["control"]).group(1))  # type: ignore[union-attr]
        cfg = _config(tmp_path, control)
        fault = subprocess.run([*VIAFORM, "sim", "fault", "etcher", "gas_fault", "--config",
                                str(cfg)], capture_output=True, text=True, timeout=20)
        assert fault.returncode == 0, fault.stderr
        world = subprocess.run([*VIAFORM, "sim", "world", "--config", str(cfg)],
                               capture_output=True, text=True, timeout=20)
        assert world.returncode == 0, world.stderr
        assert json.loads(world.stdout)["wafers"] == {}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) == 0, "Ctrl-C must stop the simulators cleanly"
        finally:
            if proc.poll() is None:
                proc.kill()


def test_sim_refuses_an_unknown_tool_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run([*VIAFORM, "sim", "--only", "toaster", "--config",
                             str(_config(tmp_path))], capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "unknown tool 'toaster'" in result.stderr
    assert "Traceback" not in result.stderr
