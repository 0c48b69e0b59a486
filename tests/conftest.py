"""Shared fixtures: the bundled simulators, or the real tools on a maintenance day.

``pytest`` alone starts the bundled simulators for each test that asks for
them. ``pytest --tools configs/tools.yaml`` runs the same hardware-in-loop
tests against the tools that file names; tests that need fault injection
(``fault_sims``) then skip themselves, saying why.

Restrict which simulators a test starts with ``@pytest.mark.sim_tools("oven")``;
change the time scale with ``@pytest.mark.sim_time_scale(500)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sequencer.line.simhost import tools_config_for
from simulators.runner import SimThread

DEFAULT_TIME_SCALE = 200.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tools",
        default=None,
        metavar="FILE",
        help="tools.yaml of real tools to run the hardware-in-loop tests against "
        "(default: start the bundled simulators)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim_tools(*tools): which simulators the test starts")
    config.addinivalue_line("markers", "sim_time_scale(x): simulated seconds per wall second")


@pytest.fixture(autouse=True)
def _no_ambient_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI commands go straight to the tools unless a test names a daemon itself.

    `viaform tool …` uses a daemon when one answers at the configured address; a
    daemon left running on this machine must not change what a test exercises.
    """
    monkeypatch.setenv("VIAFORM_DAEMON", "none")


def _real_tools(request: pytest.FixtureRequest) -> str | None:
    return request.config.getoption("--tools")


@pytest.fixture
def sims(request: pytest.FixtureRequest) -> Iterator[SimThread | None]:
    """Fresh bundled simulators for this test (None when --tools names real tools)."""
    if _real_tools(request):
        yield None
        return
    tools_marker = request.node.get_closest_marker("sim_tools")
    scale_marker = request.node.get_closest_marker("sim_time_scale")
    only = set(tools_marker.args) if tools_marker else None
    scale = float(scale_marker.args[0]) if scale_marker else DEFAULT_TIME_SCALE
    with SimThread(time_scale=scale, only=only, seed=1) as stack:
        yield stack


@pytest.fixture
def fault_sims(request: pytest.FixtureRequest, sims: SimThread | None) -> SimThread:
    """The bundled simulators, for tests that inject faults; skips against real tools."""
    if sims is None:
        pytest.skip("needs the bundled simulators' fault injection; --tools names real tools")
    return sims


def sim_tools_config(sims: SimThread, timeout_s: float = 2.0) -> dict[str, dict[str, Any]]:
    """Driver config mappings (as in tools.yaml) pointing at a running SimThread."""
    return tools_config_for(sims.endpoints, sims.clock.time_scale, timeout_s=timeout_s).entries


@pytest.fixture
def tools_cfg(request: pytest.FixtureRequest, sims: SimThread | None) -> dict[str, dict[str, Any]]:
    """tool → driver config mapping: from --tools FILE, or pointing at ``sims``."""
    path = _real_tools(request)
    if path:
        from sequencer.line.config import load_tools

        return load_tools(path).entries
    assert sims is not None
    return sim_tools_config(sims)
