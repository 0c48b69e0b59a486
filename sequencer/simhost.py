"""The one place the sequencer touches the bundled simulators.

It starts them (``viaform sim``, ``viaform demo``) and talks to their control
port (JSON lines over TCP) for the simulated world, fault switches and
material handling. Everything else in the sequencer reaches tools through
``drivers`` only.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from simulators.faults import COMMS_FAULTS, TOOL_FAULTS
from simulators.runner import TOOLS, SimStack, SimThread

from .config import ToolsConfig

__all__ = [
    "COMMS_FAULTS",
    "TOOL_FAULTS",
    "TOOLS",
    "SimControlClient",
    "SimControlError",
    "SimStack",
    "SimThread",
    "known_faults",
    "sim_ports",
    "tools_config_for",
]


class SimControlError(RuntimeError):
    """The control port refused a request or could not be reached; the message says which."""


def known_faults(tool: str) -> dict[str, str]:
    return {**COMMS_FAULTS, **TOOL_FAULTS.get(tool, {})}


def sim_ports(cfg: ToolsConfig) -> dict[str, int]:
    """The TCP ports the simulators listen on, from each tool's ``sim:`` section."""
    ports: dict[str, int] = {}
    for tool in TOOLS:
        sim = (cfg.entries.get(tool) or {}).get("sim") or {}
        if "port" in sim:
            ports[tool] = int(sim["port"])
    ports["control"] = int(cfg.sim_control.get("port", 5030))
    return ports


class SimControlClient:
    """A blocking client of the simulators' control port; one request at a time."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0) -> None:
        self.address = (host, port)
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = b""

    @classmethod
    def from_config(cls, cfg: ToolsConfig) -> SimControlClient:
        return cls(str(cfg.sim_control.get("host", "127.0.0.1")), int(cfg.sim_control["port"]))

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection(self.address, timeout=self.timeout_s)
            except OSError as exc:
                host, port = self.address
                raise SimControlError(
                    f"simulators' control port {host}:{port} unreachable ({exc.strerror or exc}); "
                    "is `viaform sim` running?"
                ) from None
        return self._sock

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        sock = self._connect()
        try:
            sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            while b"\n" not in self._buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                self._buffer += chunk
        except OSError as exc:
            self.close()
            raise SimControlError(f"simulators' control port: {exc}") from None
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise SimControlError(reply.get("error", "refused"))
        return reply

    def world(self) -> dict[str, Any]:
        return self.request("world")["world"]

    def add_wafers(self, wafers: list[str], film_um: float = 10.0) -> None:
        self.request("add_wafers", wafers=wafers, film_um=film_um)

    def transfer(self, wafers: list[str], to: str) -> None:
        self.request("transfer", wafers=wafers, to=to)

    def inject(self, tool: str, fault: str, **params: Any) -> None:
        self.request("fault", tool=tool, fault=fault, params=params)

    def clear(self, tool: str, fault: str | None = None) -> None:
        self.request("clear", tool=tool, fault=fault)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buffer = b""


def tools_config_for(
    endpoints: dict[str, dict[str, Any]],
    time_scale: float,
    *,
    journal: str = "var/viaform.db",
    timeout_s: float = 2.0,
) -> ToolsConfig:
    """A :class:`ToolsConfig` whose tools are the running simulators at ``endpoints``.

    Poll periods are stretched with the time scale so a poll never comes more
    often than every ~10 ms of wall time (the tools' own states are what the
    sequencer watches; polling faster only burns CPU).
    """
    from pathlib import Path

    scpi_poll = max(0.5, 0.01 * time_scale)
    entries: dict[str, dict[str, Any]] = {}
    if "exposure" in endpoints:
        host, port = endpoints["exposure"]["tcp"]
        entries["exposure"] = {
            "resource": f"TCPIP0::{host}::{port}::SOCKET",
            "timeout_s": timeout_s,
            "poll_s": scpi_poll,
        }
    if "etcher" in endpoints:
        host, port = endpoints["etcher"]["tcp"]
        entries["etcher"] = {
            "url": f"socket://{host}:{port}",
            "baudrate": 9600,
            "timeout_s": timeout_s,
            "poll_s": scpi_poll,
            "pty": endpoints["etcher"].get("pty"),
        }
    if "oven" in endpoints:
        host, port = endpoints["oven"]["tcp"]
        entries["oven"] = {
            "transport": "tcp",
            "host": host,
            "port": port,
            "unit": 1,
            "serial_port": endpoints["oven"].get("rtu"),
            "baudrate": 19200,
            "timeout_s": timeout_s,
            "poll_s": max(5.0, 0.02 * time_scale),
        }
    host, port = endpoints["control"]["tcp"]
    return ToolsConfig(
        path=Path("<simulators>"),
        time_scale=time_scale,
        journal=Path(journal),
        entries=entries,
        sim_control={"host": host, "port": port},
    )
