"""The simulators' control port, as a client: JSON lines over TCP.

The simulated world, its fault switches and material handling are reached
through this port. Nothing here imports the ``simulators`` package, so
``sequencer.line.handling`` and the daemon can use the client without loading it;
starting the simulators is ``sequencer.line.simhost``'s.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from sequencer.line.config import ToolsConfig


class SimControlError(RuntimeError):
    """The control port refused a request or could not be reached; the message says which."""


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
