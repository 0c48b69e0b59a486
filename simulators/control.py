"""The simulators' control port: JSON lines over TCP.

One request line → one reply line. It is how another process (``viaform sim
world|fault|clear``, the sequencer's simulated material handling) reaches the
simulated world and the fault switches. Requests and replies:

    {"op": "world"}                                         → {"ok": true, "world": {...}}
    {"op": "add_wafers", "wafers": ["W01"], "film_um": 10}  → {"ok": true}
    {"op": "transfer", "wafers": ["W01"], "to": "oven"}     → {"ok": true}
    {"op": "fault", "tool": "oven", "fault": "door_open", "params": {}} → {"ok": true}
    {"op": "fault", "tool": "oven", "fault": "power_cycle"} → {"ok": true}  (one-shot: reboots now)
    {"op": "clear", "tool": "oven", "fault": null}          → {"ok": true}
    {"op": "faults"}                                        → {"ok": true, "faults": {...}}
    {"op": "endpoints"}                                     → {"ok": true, "endpoints": {...}}

Any failure answers ``{"ok": false, "error": "<what was wrong>"}`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from .faults import Faults
from .world import TransferError, World

MAX_REQUEST = 1 << 20


class ControlServer:
    def __init__(
        self, world: World, faults: dict[str, Faults], endpoints: Callable[[], dict[str, Any]]
    ) -> None:
        self.world = world
        self.faults = faults
        self.endpoints = endpoints
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._client, host, port, limit=MAX_REQUEST)
        name = self._server.sockets[0].getsockname()
        return name[0], name[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = self.handle(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            return {"ok": True, **(self._dispatch(request) or {})}
        except (ValueError, KeyError, TypeError, TransferError) as exc:
            return {"ok": False, "error": str(exc).strip("'\"")}

    def _tool_faults(self, request: dict[str, Any]) -> Faults:
        tool = request.get("tool")
        if tool not in self.faults:
            raise KeyError(f"unknown or not running tool {tool!r}; running: {sorted(self.faults)}")
        return self.faults[tool]

    def _dispatch(self, req: dict[str, Any]) -> dict[str, Any] | None:
        op = req.get("op")
        if op == "world":
            return {"world": self.world.snapshot()}
        if op == "endpoints":
            return {"endpoints": self.endpoints()}
        if op == "faults":
            return {"faults": {t: dict(f.active) for t, f in self.faults.items()}}
        if op == "add_wafers":
            wafers = _wafer_list(req)
            film = float(req.get("film_um", 10.0))
            if not 0 < film <= 100:
                raise ValueError(f"film_um {film} out of range (0, 100]")
            self.world.add_wafers(wafers, film_um=film)
            return None
        if op == "transfer":
            self.world.transfer(_wafer_list(req), str(req.get("to")))
            return None
        if op == "fault":
            params = req.get("params") or {}
            if not isinstance(params, dict):
                raise ValueError("params must be an object")
            self._tool_faults(req).inject(str(req.get("fault")), **params)
            return None
        if op == "clear":
            fault = req.get("fault")
            self._tool_faults(req).clear(None if fault is None else str(fault))
            return None
        raise ValueError(
            f"unknown op {op!r}; known: "
            "world, add_wafers, transfer, fault, clear, faults, endpoints"
        )


def _wafer_list(req: dict[str, Any]) -> list[str]:
    wafers = req.get("wafers")
    if not isinstance(wafers, list) or not wafers or not all(isinstance(w, str) for w in wafers):
        raise ValueError("wafers must be a non-empty list of wafer ids")
    return wafers
