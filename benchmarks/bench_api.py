"""The daemon's API under load while a lot runs, against the bundled simulators.

Three processes, as on a tool PC: the simulators, ``viaform daemon`` (uvicorn + the
engine on its own thread), and this one, the load: 50 concurrent HTTP clients on
loopback asking for status (``GET /lots/{id}``, ``GET /tools/{tool}``).

1. Makespan of the same small lot (4 wafers, a short cure) with no load and with the
   50 clients at a fixed offered rate (``RATE`` req/s in total, the clients paced open-
   loop, so latency is the server's, not queueing behind our own clients); runs
   interleaved (quiet, loaded, quiet, loaded …), medians compared. Target: loaded /
   quiet ≤ 1.05. p50/p99 latency at that rate is printed.
2. Saturation (info): the 50 clients closed-loop for a few seconds while a lot runs;
   throughput and p50/p99 (on 2 cores ~1000 req/s: latency there is queueing).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE

REPO = Path(__file__).resolve().parents[1]
SCALE = 1000.0
CLIENTS = 50
RATE = 250.0  # offered req/s in total during the makespan runs
ROUNDS = 2  # quiet + loaded pairs
WAFERS = 4
SATURATE_S = 3.0
TARGET = 1.05
CLI = {CLIENT_HEADER: CLIENT_VALUE}  # the daemon is open (no tokens): POSTs need the CLI header
_SIMS = """
import sys, time, yaml
from simulators.runner import SimThread
from sequencer.line.simhost import tools_config_for
with SimThread(time_scale={scale}, seed=5, line={line!r}) as sims:
    cfg = tools_config_for(sims.endpoints, {scale}, journal={db!r})
    doc = {{"time_scale": {scale}, "journal": {db!r}, "handling": "sim",
           **cfg.entries, "sim_control": cfg.sim_control}}
    open({tools!r}, "w").write(yaml.safe_dump(doc))
    sys.stdin.read()
"""


def _recipes(tmp: Path) -> Path:
    """configs/recipes plus FLOW-Q: FLOW-A with a shorter full cure (~1.7 h)."""
    recipes = tmp / "recipes"
    shutil.copytree(REPO / "configs" / "recipes", recipes)
    cure = {"name": "CURE-Q", "batch_size": 25, "o2_limit_ppm": 20,
            "segments": [{"ramp_c_per_min": 10.0, "target_c": 150.0, "hold_min": 10},
                         {"ramp_c_per_min": 5.0, "target_c": 300.0, "hold_min": 30}],
            "unload_c": 150.0, "high_limit_c": None, "n2_flow_slm": 50.0,
            "shrink_fraction": 0.25}
    flow = {"name": "FLOW-Q", "variant": "A",
            "steps": [{"process": "exposure", "recipe": "EXP-CONCAVE-01"},
                      {"process": "cure", "recipe": "CURE-Q"},
                      {"process": "etch", "recipe": "ETCH-OPEN-01"}]}
    (recipes / "CURE-Q.yaml").write_text(yaml.safe_dump({"cure": cure}))
    (recipes / "FLOW-Q.yaml").write_text(yaml.safe_dump({"flow": flow}))
    return recipes


def _wait(pred: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


class Line:
    """The simulators and the daemon, each in its own process."""

    def __init__(self, tmp: Path, scale: float = SCALE,
                 line: dict[str, str] | None = None) -> None:
        """``line``: tool name → kind (default the classic three), one simulator each."""
        db, tools = tmp / "journal.db", tmp / "tools.yaml"
        env = {**os.environ, "VIAFORM_TOKENS": ""}
        self.sims = subprocess.Popen(
            [sys.executable, "-c", _SIMS.format(scale=scale, db=str(db), tools=str(tools),
                                                line=line)],
            stdin=subprocess.PIPE, cwd=REPO, env=env)
        _wait(tools.exists, 20.0, "the simulators")
        err = tmp / "daemon.err"
        with err.open("wb") as f:
            self.daemon = subprocess.Popen(
                [str(Path(sys.executable).with_name("viaform")), "daemon", "--config",
                 str(tools), "--db", str(db), "--recipes", str(_recipes(tmp)), "--bind",
                 "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=f, cwd=REPO, env=env)
        m = _wait(lambda: re.search(r"on (http://127\.0\.0\.1:\d+)", err.read_text()), 20.0,
                  "the daemon")
        self.url = m.group(1)

    def close(self) -> None:
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
        assert self.sims.stdin is not None
        self.sims.stdin.close()
        try:
            self.sims.wait(10)
        except subprocess.TimeoutExpired:
            self.sims.kill()


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


class _Conn:
    """One keep-alive HTTP/1.1 connection doing GETs: a lean client, so that the figures are
    the server's (an httpx.AsyncClient costs more CPU per request than the server)."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].split(":")
        self.addr = (host, int(port))
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(*self.addr)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await self.reader.readexactly(int(length.group(1)) if length else 0)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _clients(url: str, lot_id: str, stop: asyncio.Event, rate: float | None,
                   lat: list[float]) -> None:
    """50 clients; paced at ``rate`` req/s in total (open loop), or closed loop if None."""
    paths = [f"/lots/{lot_id}", "/tools/exposure", "/tools/oven", "/tools/etcher"]

    async def one(i: int) -> None:
        conn = _Conn(url)
        period = CLIENTS / rate if rate else 0.0
        nxt = time.perf_counter() + period * i / CLIENTS
        n = i
        try:
            while not stop.is_set():
                if period:
                    await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
                    nxt += period
                t0 = time.perf_counter()
                status = await conn.get(paths[n % len(paths)])
                lat.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"GET {paths[n % len(paths)]}: {status}")
                n += 1
        finally:
            conn.close()

    await asyncio.gather(*(one(i) for i in range(CLIENTS)))


async def _lot(url: str, lot_id: str, rate: float | None, load: bool) -> tuple[float, list[float]]:
    """Submit a lot; the wall time until it completes, and the load's latencies."""
    body = {"lot": {"lot_id": lot_id, "flow": "FLOW-Q",
                    "wafers": [{"slot": i, "id": f"{lot_id}-{i}"} for i in range(1, WAFERS + 1)]}}
    lat: list[float] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=30.0, headers=CLI) as http:
        t0 = time.perf_counter()
        r = await http.post("/lots", json=body)
        r.raise_for_status()
        load_task = asyncio.create_task(_clients(url, lot_id, stop, rate, lat)) if load \
            else None
        while (await http.get(f"/lots/{lot_id}")).json()["state"] not in (
                "PROCESS_COMPLETE", "ABORTED", "STOPPED"):
            await asyncio.sleep(0.05)
        span = time.perf_counter() - t0
        state = (await http.get(f"/lots/{lot_id}")).json()["state"]
    stop.set()
    if load_task is not None:
        await load_task
    if state != "PROCESS_COMPLETE":
        raise RuntimeError(f"lot {lot_id} ended {state}")
    return span, lat


async def _saturate(url: str) -> tuple[float, list[float]]:
    lat: list[float] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=30.0, headers=CLI) as http:
        body = {"lot": {"lot_id": "SAT", "flow": "FLOW-Q",
                        "wafers": [{"slot": 1, "id": "SAT-1"}]}}
        (await http.post("/lots", json=body)).raise_for_status()
    task = asyncio.create_task(_clients(url, "SAT", stop, None, lat))
    await asyncio.sleep(SATURATE_S)
    stop.set()
    await task
    return len(lat) / SATURATE_S, lat


def main() -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    line = Line(tmp)
    try:
        quiet: list[float] = []
        loaded: list[float] = []
        lat: list[float] = []
        asyncio.run(_lot(line.url, "WARM", None, False))  # connections, imports, first batch
        for i in range(ROUNDS):
            quiet.append(asyncio.run(_lot(line.url, f"Q{i}", None, False))[0])
            span, ls = asyncio.run(_lot(line.url, f"L{i}", RATE, True))
            loaded.append(span)
            lat += ls
        rps, sat = asyncio.run(_saturate(line.url))
    finally:
        line.close()
        shutil.rmtree(tmp, ignore_errors=True)
    q, ld = statistics.median(quiet), statistics.median(loaded)
    ratio = ld / q
    print(f"lot of {WAFERS} wafers at time scale {SCALE:g}; {CLIENTS} clients on loopback")
    print(f"makespan quiet  {', '.join(f'{x:.2f}' for x in quiet)} s (median {q:.2f} s)")
    print(f"makespan loaded {', '.join(f'{x:.2f}' for x in loaded)} s (median {ld:.2f} s) "
          f"at {RATE:g} req/s offered, {len(lat) / max(sum(loaded), 1e-9):.0f} req/s served")
    print(f"status latency at {RATE:g} req/s: p50 {_pct(lat, 50) * 1e3:.1f} ms, "
          f"p99 {_pct(lat, 99) * 1e3:.1f} ms ({len(lat)} requests)")
    print(f"saturated (closed loop, info): {rps:.0f} req/s, p50 {_pct(sat, 50) * 1e3:.1f} ms, "
          f"p99 {_pct(sat, 99) * 1e3:.1f} ms")
    ok = ratio <= TARGET
    print(f"makespan loaded / quiet = {ratio:.3f} (target <= {TARGET}) "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
