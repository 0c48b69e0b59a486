"""Plain clients and world helpers for the PE-200 simulator tests (no drivers, no tests)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from simulators.runner import SimThread


class Tcp:
    """A raw TCP SCPI client: one line out, one CR LF line back."""

    def __init__(self, addr: tuple[str, int], timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = b""

    def send(self, line: str, end: bytes = b"\n") -> None:
        self.sock.sendall(line.encode() + end)

    def read_raw(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def ask(self, line: str) -> str:
        self.send(line)
        raw = self.read_raw()
        assert b"\n" not in raw[:-2], raw  # replies end in CR LF, never a bare LF
        return raw[:-2].decode()

    def err(self) -> str:
        return self.ask("SYST:ERR?")

    def errors(self) -> list[int]:
        codes = []
        while (e := self.err()) != '0,"No error"':
            codes.append(int(e.split(",")[0]))
        return codes

    def close(self) -> None:
        self.sock.close()


def wait_for(client: Tcp, state: str, tool_s: float, sims: SimThread) -> float:
    """Poll SYSTem:STATe? until ``state``; return the tool time it was first seen."""
    deadline = time.monotonic() + sims.clock.to_wall(tool_s) + 2.0
    while time.monotonic() < deadline:
        if client.ask("SYST:STAT?") == state:
            return sims.clock.now()
        time.sleep(0.001)
    raise AssertionError(f"not {state} within {tool_s} tool s: {client.ask('SYST:STAT?')}")


def put_wafer(
    sims: SimThread,
    wid: str = "W01",
    residual_pre_cure: float | None = 1.0,
    cure: float = 1.0,
    spread_max: float = 1.12,
) -> None:
    """A wafer after the first process and cure, at the etcher's load position."""

    def make() -> None:
        sims.world.add_wafers([wid])
        w = sims.world.wafer(wid)
        w.top_um, w.residual_pre_cure_um = 9.5, residual_pre_cure
        w.degree_of_cure, w.spread_max = cure, spread_max
        sims.world.transfer([wid], "etcher")

    sims.call(make)


def wafer(sims: SimThread, wid: str = "W01") -> dict[str, Any]:
    return sims.call(lambda: sims.world.wafer(wid).to_json())


@contextmanager
def etcher(scale: float = 500.0) -> Iterator[tuple[SimThread, Tcp]]:
    with SimThread(time_scale=scale, only={"etcher"}, seed=7) as sims:
        client = Tcp(sims.endpoints["etcher"]["tcp"])
        try:
            yield sims, client
        finally:
            client.close()


def load_ready(sims: SimThread, c: Tcp, wid: str = "W01", **kw: Any) -> None:
    put_wafer(sims, wid, **kw)
    c.send(f"WAF:LOAD {wid}")
    wait_for(c, "READY", 60, sims)


def run_etch(sims: SimThread, c: Tcp, tool_s: float = 400) -> str:
    """ETCH:STARt and wait for COMPLETE; return ETCH:STATus?."""
    assert c.ask("ETCH:STAR;:SYST:STAT?") == "STABILIZING"
    wait_for(c, "COMPLETE", tool_s, sims)
    return c.ask("ETCH:STAT?")
