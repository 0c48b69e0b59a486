"""The one place the sequencer touches the bundled simulators.

It starts them (``viaform sim``, ``viaform demo``). The control port's client
(``SimControlClient``, re-exported here) lives in ``sequencer.line.sim_control``,
which does not import the simulators, so handling and the daemon do not load
them. Everything else in the sequencer reaches tools through ``drivers`` only.
"""

from __future__ import annotations

from typing import Any

from sequencer.line.config import ToolsConfig
from sequencer.line.sim_control import SimControlClient, SimControlError
from simulators.faults import COMMS_FAULTS, TOOL_FAULTS
from simulators.runner import TOOLS, SimStack, SimThread

__all__ = [
    "COMMS_FAULTS",
    "TOOL_FAULTS",
    "TOOLS",
    "SimControlClient",
    "SimControlError",
    "SimStack",
    "SimThread",
    "known_faults",
    "sim_line",
    "sim_ports",
    "tools_config_for",
]


def known_faults(kind: str) -> dict[str, str]:
    """The faults a simulator of ``kind`` knows (a tool's name of the classic line too)."""
    return {**COMMS_FAULTS, **TOOL_FAULTS.get(kind, {})}


def sim_ports(cfg: ToolsConfig) -> dict[str, int]:
    """The TCP ports the simulators listen on, from each tool's ``sim:`` section."""
    ports: dict[str, int] = {}
    for tool in cfg.kinds:
        sim = (cfg.entries.get(tool) or {}).get("sim") or {}
        if "port" in sim:
            ports[tool] = int(sim["port"])
    ports["control"] = int(cfg.sim_control.get("port", 5030))
    return ports


def sim_line(cfg: ToolsConfig) -> dict[str, str]:
    """The simulators `viaform sim` starts for ``cfg``: one per tool, name → kind."""
    return dict(cfg.kinds) or {t: t for t in TOOLS}


def tools_config_for(
    endpoints: dict[str, dict[str, Any]],
    time_scale: float,
    *,
    journal: str = "var/viaform.db",
    timeout_s: float = 2.0,
) -> ToolsConfig:
    """A :class:`ToolsConfig` whose tools are the running simulators at ``endpoints``
    (each endpoint names its ``kind``; one without is named by its kind).

    Poll periods are stretched with the time scale so a poll never comes more
    often than every ~10 ms of wall time (the tools' own states are what the
    sequencer watches; polling faster only burns CPU).
    """
    from pathlib import Path

    scpi_poll = max(0.5, 0.01 * time_scale)
    entries: dict[str, dict[str, Any]] = {}
    for tool, ep in endpoints.items():
        if tool == "control":
            continue
        kind = str(ep.get("kind") or tool)
        entries[tool] = {"kind": kind} if kind != tool else {}
        host, port = ep["tcp"]
        if kind == "exposure":
            entries[tool].update({
                "resource": f"TCPIP0::{host}::{port}::SOCKET",
                "timeout_s": timeout_s,
                "poll_s": scpi_poll,
            })
        elif kind == "etcher":
            entries[tool].update({
                "url": f"socket://{host}:{port}",
                "baudrate": 9600,
                "timeout_s": timeout_s,
                "poll_s": scpi_poll,
                "pty": ep.get("pty"),
            })
        else:
            entries[tool].update({
                "transport": "tcp",
                "host": host,
                "port": port,
                "unit": 1,
                "serial_port": ep.get("rtu"),
                "baudrate": 19200,
                "timeout_s": timeout_s,
                "poll_s": max(5.0, 0.02 * time_scale),
            })
    host, port = endpoints["control"]["tcp"]
    return ToolsConfig(
        path=Path("<simulators>"),
        time_scale=time_scale,
        journal=Path(journal),
        entries=entries,
        sim_control={"host": host, "port": port},
    )
