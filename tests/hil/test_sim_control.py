"""The simulators' control port and `viaform sim world|fault|clear`, over a real socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.faces.cli import app
from sequencer.line.simhost import SimControlClient, SimControlError
from simulators.runner import SimThread


@pytest.fixture
def bare_world():
    """A world and control port with no tools: handling between stocker locations only."""
    with SimThread(time_scale=100.0, only=[]) as stack:
        yield stack


def _raw(addr: tuple[str, int], line: bytes) -> dict:
    with socket.create_connection(addr, timeout=2) as sock:
        sock.sendall(line)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, "control port closed the connection"
            data += chunk
    return json.loads(data)


@pytest.mark.timeout(20)
def test_add_wafers_and_world_snapshot(bare_world: SimThread) -> None:
    client = SimControlClient(*bare_world.endpoints["control"]["tcp"])
    client.add_wafers(["W01", "W02"], film_um=12.0)
    world = client.world()
    assert set(world["wafers"]) == {"W01", "W02"}
    w01 = world["wafers"]["W01"]
    assert w01["location"] == "stocker"
    assert w01["film_um"] == 12.0
    assert w01["exposures"] == 0 and w01["etches"] == 0 and w01["vias_open"] is False


@pytest.mark.timeout(20)
def test_bad_requests_answer_ok_false_and_change_nothing(bare_world: SimThread) -> None:
    addr = bare_world.endpoints["control"]["tcp"]
    assert _raw(addr, b"not json\n")["ok"] is False
    assert "unknown op" in _raw(addr, b'{"op": "explode"}\n')["error"]
    reply = _raw(addr, b'{"op": "transfer", "wafers": ["NOPE"], "to": "oven"}\n')
    assert reply["ok"] is False and "unknown wafer" in reply["error"]
    reply = _raw(addr, b'{"op": "fault", "tool": "oven", "fault": "door_open"}\n')
    assert reply["ok"] is False and "not running" in reply["error"]
    assert _raw(addr, b'{"op": "world"}\n')["world"]["wafers"] == {}


@pytest.mark.timeout(20)
def test_transfer_to_unknown_location_is_refused_whole(bare_world: SimThread) -> None:
    client = SimControlClient(*bare_world.endpoints["control"]["tcp"])
    client.add_wafers(["A1"])
    with pytest.raises(SimControlError, match="unknown location"):
        client.transfer(["A1"], "moon")
    assert client.world()["wafers"]["A1"]["location"] == "stocker"


def _config(tmp_path: Path, control: tuple[str, int]) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(f"time_scale: 100\nsim_control: {{host: {control[0]}, port: {control[1]}}}\n")
    return path


@pytest.mark.timeout(30)
@pytest.mark.sim_tools("oven")
def test_cli_world_fault_clear(sims: SimThread | None, tmp_path: Path) -> None:
    if sims is None:
        pytest.skip("the control port exists only with the bundled simulators")
    cfg = _config(tmp_path, sims.endpoints["control"]["tcp"])
    runner = CliRunner()
    result = runner.invoke(app, ["sim", "fault", "oven", "sensor_break", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert sims.call(lambda: sims.faults["oven"].is_on("sensor_break"))
    result = runner.invoke(app, ["sim", "clear", "oven", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert not sims.call(lambda: sims.faults["oven"].is_on("sensor_break"))
    sims.call(sims.world.add_wafers, ["Z9"])
    result = runner.invoke(app, ["sim", "world", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["wafers"]["Z9"]["location"] == "stocker"


def test_cli_refuses_unknown_fault_before_connecting(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ("127.0.0.1", 9))  # nothing listens there; must not be reached
    result = CliRunner().invoke(app, ["sim", "fault", "oven", "meteor", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "unknown fault 'meteor' for oven" in result.output


def test_cli_world_unreachable_is_one_readable_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that is certainly closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _config(tmp_path, ("127.0.0.1", port))
    result = CliRunner().invoke(app, ["sim", "world", "--config", str(cfg)])
    assert result.exit_code == 1
    assert "unreachable" in result.output and "Traceback" not in result.output
