"""The SECS/GEM face's speed, against the bundled simulators, a real secsgem host on loopback.

Processes, as on a tool PC: the simulators, ``viaform daemon`` with ``gem.enabled``, a bare
secsgem ``GemEquipmentHandler`` (the reference), and this one, the host
(secsgem's ``GemHostHandler``, active HSMS).

1. S1F1 round trip: viaform's equipment vs the bare secsgem equipment, rounds of
   ``N_S1F1`` back-to-back S1F1/S1F2 interleaved (viaform, bare, viaform, bare …), median
   of each; target viaform / bare ≤ 1.2, the absolute medians printed.
2. Event latency while lots run: from a wafer's state change (its journal transition
   time) to the host's receipt of the S6F11 reporting it; p50/p99; target p99 ≤ 10 ms.
3. Makespan of the same lot started over GEM (S2F41 START) vs over HTTP (POST /lots),
   interleaved, the host connected with its reports in both; median ratio ≤ 1.02. The
   span is from the request to the journal's PROCESS_COMPLETE.
"""

from __future__ import annotations

import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import secsgem.common
import secsgem.gem
import secsgem.hsms
import yaml

from benchmarks import bench_api
from benchmarks.bench_api import _SIMS, _recipes, _wait
from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE

REPO = Path(__file__).resolve().parents[1]
SCALE = 1000.0
N_S1F1 = 200
ROUNDS = 3
LOT_PAIRS = 2
WAFERS = 6  # 12 substrate events a lot, 48 in all
TARGET_RTT, TARGET_P99_S, TARGET_SPAN = 1.2, 0.010, 1.02
CLI = {CLIENT_HEADER: CLIENT_VALUE}
_BARE = """
import socket, sys, time
import secsgem.common, secsgem.gem, secsgem.hsms
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
settings = secsgem.hsms.HsmsSettings(address="127.0.0.1", port=port,
    connect_mode=secsgem.hsms.HsmsConnectMode.PASSIVE,
    device_type=secsgem.common.DeviceType.EQUIPMENT)
handler = secsgem.gem.GemEquipmentHandler(settings)
handler.enable()
print(port, flush=True)
sys.stdin.read()
import os; os._exit(0)  # secsgem 0.3's passive disable() would not return (docs/gem.md)
"""


class Host(secsgem.gem.GemHostHandler):  # type: ignore[misc]
    """secsgem's host, noting when each S6F11 arrives (wall clock) and what it says."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.got: list[tuple[float, list[Any]]] = []
        self.lock = threading.Lock()

    def _on_s06f11(self, handler: Any, message: Any) -> Any:
        t = time.time()
        f = self.settings.streams_functions.decode(message)
        with self.lock:
            self.got += [(t, list(r["V"])) for r in f.RPT.get()]
        return self.stream_function(6, 12)(0)


def host(port: int) -> Host:
    h = Host(secsgem.hsms.HsmsSettings(
        address="127.0.0.1", port=port, connect_mode=secsgem.hsms.HsmsConnectMode.ACTIVE,
        device_type=secsgem.common.DeviceType.HOST))
    h.enable()
    if not h.waitfor_communicating(15):
        raise RuntimeError(f"no communication with the equipment on port {port}")
    return h


def rtt(h: Host) -> float:
    """Median S1F1 round trip (s) over N_S1F1 back-to-back requests."""
    times = []
    for _ in range(N_S1F1):
        t0 = time.perf_counter()
        if h.send_and_waitfor_response(h.stream_function(1, 1)()) is None:
            raise RuntimeError("S1F1 unanswered")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Line(bench_api.Line):
    """The simulators and `viaform daemon` with gem enabled, each in its own process
    (``close`` as the API benchmark's)."""

    def __init__(self, tmp: Path) -> None:
        self.db, tools = tmp / "journal.db", tmp / "tools.yaml"
        env = {**os.environ, "VIAFORM_TOKENS": ""}
        self.sims = subprocess.Popen(
            [sys.executable, "-c", _SIMS.format(scale=SCALE, db=str(self.db),
                                                 tools=str(tools), line=None)],
            stdin=subprocess.PIPE, cwd=REPO, env=env)
        _wait(tools.exists, 20.0, "the simulators")
        _wait(lambda: tools.read_text().strip(), 5.0, "tools.yaml")
        doc = yaml.safe_load(tools.read_text())
        doc["gem"] = {"enabled": True, "port": 0, "initial_control_state": "ONLINE_REMOTE"}
        tools.write_text(yaml.safe_dump(doc))
        err = tmp / "daemon.err"
        with err.open("wb") as f:
            self.daemon = subprocess.Popen(
                [str(Path(sys.executable).with_name("viaform")), "daemon", "--config",
                 str(tools), "--db", str(self.db), "--recipes", str(_recipes(tmp)),
                 "--bind", "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=f, cwd=REPO,
                env=env)
        text = _wait(lambda: (lambda t: t if "HSMS passive" in t and "http://" in t else None)(
            err.read_text()), 20.0, "the daemon")
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", text)
        port = re.search(r"HSMS passive\) on [\d.]+:(\d+)", text)
        assert url and port, text
        self.url, self.gem_port = url.group(1), int(port.group(1))
        _wait(lambda: _ok(self.url), 60.0, "the daemon to answer")


def _ok(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _subscribe(h: Host) -> None:
    """One report (SubstID, SubstState, SubstPreviousState) on every substrate event."""
    from sequencer.faces.gem.tables import SUBSTRATE_EVENTS, build

    t = build(["exposure", "oven", "etcher"])
    vids = [t.by_name[n].vid for n in ("SubstID", "SubstState", "SubstPreviousState")]
    ceids = [t.event_by_name[n].ceid for n in SUBSTRATE_EVENTS.values()]
    for sf, body in (((2, 33), {"DATAID": 1, "DATA": [{"RPTID": 1, "VID": vids}]}),
                     ((2, 35), {"DATAID": 2, "DATA": [{"CEID": c, "RPTID": [1]}
                                                      for c in ceids]}),
                     ((2, 37), {"CEED": True, "CEID": ceids})):
        reply = h.send_and_waitfor_response(h.stream_function(*sf)(body))
        if reply is None or h.settings.streams_functions.decode(reply).get() != 0:
            raise RuntimeError(f"S{sf[0]}F{sf[1]} refused")


def _journal(db: Path, lot: str) -> tuple[list[tuple[str, str, str, float]], float]:
    """The lot's wafer transitions (id, src, dst, unix t) and its PROCESS_COMPLETE time."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT t, kind, subject, src, dst FROM transitions ORDER BY id"
                           ).fetchall()
    wafers = [(s, a, b, t / SCALE) for t, k, s, a, b in rows
              if k == "wafer" and s.startswith(lot + "-")]
    done = [t / SCALE for t, k, s, a, b in rows
            if k == "job" and s == lot and b == "PROCESS_COMPLETE"]
    return wafers, (done[0] if done else 0.0)


def _run_lot(line: Line, h: Host, lot: str, over_gem: bool) -> float:
    ids = [f"{lot}-{i}" for i in range(1, WAFERS + 1)]
    t0 = time.time()
    if over_gem:
        reply = h.send_and_waitfor_response(h.stream_function(2, 41)({"RCMD": "START", "PARAMS": [
            {"CPNAME": "LOTID", "CPVAL": lot}, {"CPNAME": "PPID", "CPVAL": "FLOW-Q"},
            {"CPNAME": "WAFERIDS", "CPVAL": ",".join(ids)}]}))
        if reply is None or h.settings.streams_functions.decode(reply).HCACK.get() != 4:
            raise RuntimeError(f"START {lot} refused")
    else:
        r = httpx.post(f"{line.url}/lots", headers=CLI, json={"lot": {
            "lot_id": lot, "flow": "FLOW-Q",
            "wafers": [{"slot": i, "id": w} for i, w in enumerate(ids, 1)]}})
        r.raise_for_status()
    return float(_wait(lambda: _completed(line.db, lot), 120.0, f"lot {lot}")) - t0


def _completed(db: Path, lot: str) -> float | None:
    """The lot's PROCESS_COMPLETE time (unix), one small query: this process is the host,
    and its own work while a lot runs would be counted in the event latency."""
    time.sleep(0.05)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        row = con.execute("SELECT t FROM transitions WHERE kind='job' AND subject=? AND "
                          "dst='PROCESS_COMPLETE'", (lot,)).fetchone()
    return row[0] / SCALE if row else None


def _latencies(line: Line, h: Host, lots: list[str]) -> list[float]:
    """Receipt − transition time of each substrate event (matched in order per wafer)."""
    with h.lock:
        got = list(h.got)
    out = []
    for lot in lots:
        wafers, _ = _journal(line.db, lot)
        seen = [(t, v) for t, v in got if str(v[0]).startswith(lot + "-")]
        if len(seen) != len(wafers):
            raise RuntimeError(f"{lot}: {len(seen)} events for {len(wafers)} transitions")
        for (wid, src, dst, t), (recv, v) in zip(wafers, seen, strict=True):
            if (str(v[0]), str(v[2]), str(v[1])) != (wid, src, dst):
                raise RuntimeError(f"{lot}: event {v} for the transition {wid} {src}→{dst}")
            out.append(recv - t)
    return out


def main(argv: list[str] | None = None) -> bool:
    with tempfile.TemporaryDirectory(prefix="viaform-bench-gem-") as tmp_name:
        tmp = Path(tmp_name)
        line = Line(tmp)
        bare = subprocess.Popen([sys.executable, "-c", _BARE], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert bare.stdout is not None
            bare_port = int(bare.stdout.readline())
            ours, ref = host(line.gem_port), host(bare_port)
            ours_rtt, bare_rtt = [], []
            for _ in range(ROUNDS):
                ours_rtt.append(rtt(ours))
                bare_rtt.append(rtt(ref))
            ref.disable()
            _subscribe(ours)
            spans: dict[bool, list[float]] = {False: [], True: []}
            lots = []
            for i in range(LOT_PAIRS):
                for over_gem in (False, True):
                    lot = f"{'G' if over_gem else 'H'}{i}"
                    spans[over_gem].append(_run_lot(line, ours, lot, over_gem))
                    lots.append(lot)
            time.sleep(0.5)
            lat = sorted(_latencies(line, ours, lots))
            ours.disable()
        finally:
            assert bare.stdin is not None
            bare.stdin.close()
            try:
                bare.wait(10)
            except subprocess.TimeoutExpired:
                bare.kill()
            line.close()
    r_ours, r_bare = statistics.median(ours_rtt), statistics.median(bare_rtt)
    ratio = r_ours / r_bare
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    span = statistics.median(spans[True]) / statistics.median(spans[False])
    rows = [
        ("S1F1 round trip viaform / bare secsgem", f"{ratio:.2f}", f"<= {TARGET_RTT}",
         ratio <= TARGET_RTT, f"median {r_ours * 1e3:.2f} ms vs {r_bare * 1e3:.2f} ms"),
        ("event latency p99 (state change -> S6F11 at host)", f"{p99 * 1e3:.2f} ms",
         f"<= {TARGET_P99_S * 1e3:.0f} ms", p99 <= TARGET_P99_S,
         f"p50 {p50 * 1e3:.2f} ms, {len(lat)} events"),
        ("makespan over GEM / over HTTP", f"{span:.3f}", f"<= {TARGET_SPAN}",
         span <= TARGET_SPAN, "GEM " + ", ".join(f"{s:.2f}" for s in spans[True])
         + " s; HTTP " + ", ".join(f"{s:.2f}" for s in spans[False]) + " s"),
    ]
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores (latency is scheduling-bound "
          f"when the machine is oversubscribed)")
    for name, value, target, ok, note in rows:
        print(f"{name:<52} {value:>10}  target {target:<9} {'PASS' if ok else 'FAIL'}  {note}")
    return all(ok for _, _, _, ok, _ in rows)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
