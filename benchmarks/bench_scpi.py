"""SCPI driver overhead and the Nagle guard, against the bundled simulators in one run.

For the exposure driver (TCPIP SOCKET resource) and the etcher driver (``socket://``),
both on our own :class:`~drivers.socket_transport.SocketTransport`, against the SAME
simulator instance:

1. query round trip: the driver's setting query vs a plain socket sending the same line;
   medians of interleaved runs; target driver / raw <= 1.2.
2. a setting write (one line with its error check, ``*ESE?;:<write>;:SYST:ERR?``) followed
   by a query, vs a lone query through the driver; target <= 2.6 (two round trips, the
   first a longer line). A short run with Nagle switched back on is printed for
   reference: it shows the guard, TCP_NODELAY, really is set.
3. for reference (no target), when pyvisa-py is installed (the test extras): its public
   ``query`` on the same resource vs the raw socket: the measured reason the driver does
   not use it (docs/drivers.md).
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.etcher import PlasmaEtcher
from drivers.exposure import ExposureTool
from drivers.scpi import ScpiInstrument
from simulators.runner import SimThread

RUNS = 600
WARMUP = 50
NAGLE_RUNS = 8
QUERY_TARGET = 1.2
WRITE_QUERY_TARGET = 2.6


class RawLine:
    """The baseline: a plain TCP socket, one line out, one line back."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=2.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def query(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("simulator closed the connection")
            self.buf += chunk
        reply, self.buf = self.buf.split(b"\n", 1)
        return reply

    def close(self) -> None:
        self.sock.close()


@dataclass
class Row:
    tool: str
    what: str
    measured_us: float
    baseline_us: float
    target: float | None

    @property
    def ratio(self) -> float:
        return self.measured_us / self.baseline_us

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.ratio <= self.target else "FAIL"


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _interleaved(a: Callable[[], Any], b: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, run alternately (order swapped every other run)."""
    ta: list[float] = []
    tb: list[float] = []
    for i in range(runs):
        if i % 2:
            ta.append(_timed(a))
            tb.append(_timed(b))
        else:
            tb.append(_timed(b))
            ta.append(_timed(a))
    return statistics.median(ta), statistics.median(tb)


def bench_tool(tool: ScpiInstrument, raw: RawLine, setting: str, value: float) -> list[Row]:
    line = f"{tool.settings[setting].query_line}\n".encode()
    expected = tool.get(setting)
    assert float(raw.query(line)) == expected, "driver and raw socket disagree"

    def drv_query() -> None:
        tool.get(setting)

    def raw_query() -> None:
        raw.query(line)

    def write_then_query() -> None:
        tool.set(setting, value)
        tool.get(setting)

    _interleaved(drv_query, raw_query, WARMUP)
    drv, base = _interleaved(drv_query, raw_query, RUNS)
    wq, lone = _interleaved(write_then_query, drv_query, RUNS)
    rows = [Row(tool.name, f"query {line.decode().strip()}: driver vs raw socket",
                drv * 1e6, base * 1e6, QUERY_TARGET),
            Row(tool.name, "setting write + query vs lone query", wq * 1e6, lone * 1e6,
                WRITE_QUERY_TARGET)]
    sock: socket.socket | None = getattr(tool.transport, "socket", None)
    if sock is not None:  # for reference: what the guard protects against
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        try:
            nagle, lone_n = _interleaved(write_then_query, drv_query, NAGLE_RUNS)
        finally:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rows.append(Row(tool.name, "  same with Nagle on (reference only)", nagle * 1e6,
                        lone_n * 1e6, None))
    return rows


def bench_pyvisa(host: str, port: int, raw: RawLine, query: str) -> list[Row]:
    """pyvisa-py's public API on the same resource, for reference; [] without pyvisa."""
    try:
        import pyvisa
    except ImportError:
        return []
    rm = pyvisa.ResourceManager("@py")
    res: Any = rm.open_resource(f"TCPIP0::{host}::{port}::SOCKET", read_termination="\n",
                                write_termination="\n", timeout=2000)
    line = f"{query}\n".encode()
    try:
        _interleaved(lambda: res.query(query), lambda: raw.query(line), WARMUP)
        visa, base = _interleaved(lambda: res.query(query), lambda: raw.query(line), RUNS)
    finally:
        res.close()
        rm.close()
    return [Row("exposure", f"  pyvisa {pyvisa.__version__} @py query (reference)",
                visa * 1e6, base * 1e6, None)]


def print_table(rows: list[Row]) -> None:
    head = f"{'tool':<9} {'measurement':<46} {'median':>10} {'baseline':>10} " \
           f"{'ratio':>8} {'target':>7}  result"
    print(head)
    print("-" * len(head))
    for r in rows:
        target = f"<={r.target:g}" if r.target is not None else "-"
        print(f"{r.tool:<9} {r.what:<46} {r.measured_us:>8.0f}us {r.baseline_us:>8.0f}us "
              f"{r.ratio:>7.2f}x {target:>7}  {r.verdict}")


def main() -> bool:
    rows: list[Row] = []
    with SimThread(time_scale=1.0, only={"exposure", "etcher"}, seed=1) as sims:
        for name, make, setting, value in (
            ("exposure", lambda h, p: ExposureTool.from_config(
                {"resource": f"TCPIP0::{h}::{p}::SOCKET", "timeout_s": 2.0}), "dose", 300.0),
            ("etcher", lambda h, p: PlasmaEtcher.from_config(
                {"url": f"socket://{h}:{p}", "timeout_s": 2.0}), "pressure", 200.0),
        ):
            host, port = sims.endpoints[name]["tcp"]
            tool = make(host, port)
            raw = RawLine(host, port)
            try:
                tool.connect()
                rows += bench_tool(tool, raw, setting, value)
                if name == "exposure":
                    rows += bench_pyvisa(host, port, raw, tool.settings[setting].query_line)
            finally:
                tool.close()
                raw.close()
    print(f"medians of {RUNS} interleaved runs each, same simulator, time_scale 1")
    print_table(rows)
    return all(r.verdict != "FAIL" for r in rows)


if __name__ == "__main__":
    import sys

    import benchmarks

    benchmarks.quiet_logs()
    sys.exit(0 if main() else 1)
