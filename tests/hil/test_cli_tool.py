"""`viaform tool …` end to end: CliRunner → drivers → the simulators (or --tools).

Bad input must fail with exit 2 *before connecting*; the tests prove that by
pointing the tools file at a closed port and still getting the validation
message, not a connection error.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from drivers.oven import CureOven, OvenProgram, Segment
from sequencer.faces.cli import app

runner = CliRunner()


def viaform(config: Path, *args: str) -> Any:
    return runner.invoke(app, ["tool", *args, "--config", str(config)])


def write_tools(path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"time_scale": 1.0, **entries}))
    return path


@pytest.fixture
def tools_yaml(tmp_path: Path, tools_cfg: dict[str, dict[str, Any]]) -> Path:
    """A tools.yaml pointing at the `sims` endpoints (or the real tools of --tools)."""
    return write_tools(tmp_path / "tools.yaml", tools_cfg)


@pytest.fixture
def closed_yaml(tmp_path: Path) -> tuple[Path, int]:
    """A tools.yaml whose every tool is on a port nobody listens on."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    entries = {
        "oven": {"transport": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5},
        "exposure": {"resource": f"TCPIP0::127.0.0.1::{port}::SOCKET", "timeout_s": 0.5},
        "etcher": {"url": f"socket://127.0.0.1:{port}", "timeout_s": 0.5},
    }
    return write_tools(tmp_path / "closed.yaml", entries), port


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.timeout(30)
def test_status_and_idn_print_tables(tools_yaml: Path) -> None:
    res = viaform(tools_yaml, "oven", "status")
    assert res.exit_code == 0, res.output
    assert "chamber_c" in res.output and "°C" in res.output and "IDLE" in res.output
    res = viaform(tools_yaml, "exposure", "status")
    assert res.exit_code == 0, res.output
    assert "state" in res.output and "reticle" in res.output
    res = viaform(tools_yaml, "oven", "idn")
    assert res.exit_code == 0 and "CV-25" in res.output
    res = viaform(tools_yaml, "exposure", "idn")
    assert res.exit_code == 0 and "LX-365" in res.output
    res = viaform(tools_yaml, "etcher", "status")
    assert res.exit_code == 0, res.output
    assert "pressure" in res.output and "state" in res.output
    res = viaform(tools_yaml, "etcher", "raw", "*IDN?")
    assert res.exit_code == 0 and one_line(res.output).startswith("VIAFAB,PE-200")
    for action in ("alarms", "errors", "clear-alarms"):
        res = viaform(tools_yaml, "oven", action)
        assert res.exit_code == 0, res.output


@pytest.mark.timeout(30)
@pytest.mark.sim_tools("exposure", "oven")
def test_set_then_get(tools_yaml: Path) -> None:
    res = viaform(tools_yaml, "oven", "set", "seg0_target", "150.5")
    assert res.exit_code == 0, res.output
    assert one_line(res.output) == "oven: seg0_target = 150.5 °C"
    res = viaform(tools_yaml, "oven", "get", "seg0_target")
    assert one_line(res.output) == "oven: seg0_target = 150.5 °C"
    res = viaform(tools_yaml, "exposure", "set", "focus", "-2.5")  # a negative value, not an option
    assert res.exit_code == 0, res.output
    assert "focus = -2.5" in res.output
    res = viaform(tools_yaml, "exposure", "raw", "EXP:FOC?")
    assert res.exit_code == 0 and one_line(res.output) == "-2.5"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("furnace", "status"), "unknown tool 'furnace'; known: exposure, oven, etcher"),
        (("oven", "bake"), "oven: unknown action 'bake'; known: status, idn"),
        (("oven", "set", "seg9_target", "100"), "oven: unknown setting 'seg9_target'; "
                                                "settings: segments, o2_limit"),
        (("oven", "set", "seg0_target", "500"),
         "oven: seg0_target = 500 is out of range; allowed: 20.0 – 400.0 °C"),
        (("oven", "set", "seg0_soak", "2.5"), "oven: seg0_soak = 2.5 is out of range; "
                                              "allowed: a whole number, 0 – 1440 min"),
        (("oven", "set", "chamber_c", "20"), "oven: chamber_c is read-only"),
        (("oven", "raw", "*IDN?"), "oven: raw takes SCPI lines"),
        (("exposure", "set", "dose", "5000"), "exposure: dose = '5000' is out of range"),
        (("exposure", "set", "dose", "lots"), "exposure: dose = 'lots'"),
        (("etcher", "set", "cf4", "31"), "etcher: cf4 = '31' is out of range"),
    ],
)
def test_bad_input_is_exit_2_before_connecting(
    closed_yaml: tuple[Path, int], args: tuple[str, ...], expected: str
) -> None:
    res = viaform(closed_yaml[0], *args)
    assert res.exit_code == 2, res.output
    assert one_line(res.output).startswith(expected)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("tool", ["oven", "exposure", "etcher"])
def test_unreachable_tool_is_one_line_exit_1(closed_yaml: tuple[Path, int], tool: str) -> None:
    path, port = closed_yaml
    res = viaform(path, tool, "status")
    assert res.exit_code == 1, res.output
    line = one_line(res.output)
    assert line.startswith(f"{tool}: ") and str(port) in line
    if tool == "oven":
        assert line == f"oven: cannot connect to 127.0.0.1:{port}: connection refused"


@pytest.mark.timeout(60)
@pytest.mark.sim_tools("exposure", "oven")
@pytest.mark.sim_time_scale(20)
def test_tool_refusal_shows_code_and_text(tools_yaml: Path, fault_sims: Any,
                                          tools_cfg: dict[str, dict[str, Any]]) -> None:
    fault_sims.call(fault_sims.world.add_wafers, ["W01"])
    fault_sims.call(fault_sims.world.transfer, ["W01"], "oven")
    with CureOven.from_config(tools_cfg["oven"]) as oven:
        oven.upload(OvenProgram((Segment(100.0, 1.0, 60),)))
        oven.lock_door(True)
        oven.start()
        try:
            res = viaform(tools_yaml, "oven", "set", "seg0_target", "120")
            assert res.exit_code == 1, res.output
            line = one_line(res.output)
            assert line.startswith("oven: the tool refused set seg0_target: code 4: ")
            assert "state is PURGING" in line or "state is RUNNING" in line
        finally:
            oven.abort()
    res = viaform(tools_yaml, "exposure", "raw", "EXP:DOSE 99999")
    assert res.exit_code == 1
    assert one_line(res.output) == ("exposure: the tool refused EXP:DOSE 99999: "
                                    "code -222: Data out of range")
