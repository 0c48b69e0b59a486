"""The operator's screen: ``/`` server time, and what 10 open browsers cost a running lot.

Two processes and a browser: the simulators and ``viaform daemon`` (``bench_api.Line``:
open daemon on loopback, time scale 1000), and headless Chromium (Debian's, through
Playwright) driven from this one.

1. ``/`` server time with 4 lots × 25 wafers in the journal (the four lots run to the
   end first, then ``GET /`` 50 times after one that compiles the templates; the
   daemon's own ``Server-Timing`` header gives the time from the request to the
   rendered page). Target: p99 ≤ 50 ms.
2. The same 4-wafer lot, interleaved (rounds of: no browser — the quiet run; 10 idle
   pages; 10 live sessions), medians compared. Target: live / quiet ≤ 1.02.
   **Where things run.** The 10 sessions stand for 10 panels, each a browser on its own
   machine, asking the daemon for what they show over the network. The bench has one
   machine (2 cores here), so it keeps them apart as the panels would be: the line
   (the simulators and the daemon, every thread of them) on one CPU, the clients
   (Chromium at ``nice 19``, Playwright's driver, this process and its lean reader) on
   the other(s), for every round, the quiet one included, so that the ratio measures
   what the sessions ask of the daemon (streams, fragments), not a browser rendering on
   the daemon's core (Chromium's layout and JavaScript is each panel's own machine's
   work). The idle pages (the same browser and pages with their scripts off: no
   stream, no requests) are printed beside it: what is left of the browser's presence.
   For information, each round also runs the quiet lot and the live sessions with
   everything on every CPU (the browser beside the line, as a browser on the tool PC
   itself would be): that ratio is the browser's rendering competing with the line,
   which no change to the daemon can remove.
   Side by side, a lean reader of ``/events`` (a socket on a thread of this process; one
   more subscriber beside the pages) notes how late each event arrives: its receipt time
   − the event's own time ``t``, on the same machine clock. Target: p99 ≤ 100 ms with the
   10 live sessions. Printed beside it: the same reader with no browser, and the delay
   as the pages' JavaScript sees it (screen.js's ``viaform-event``: the stream plus the
   renderer's own event loop).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

from benchmarks.bench_api import CLI, SCALE, Line, _pct, _wait

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
BIG_LOTS, BIG_WAFERS = 4, 25
RENDERS = 50
SESSIONS = 10
ROUNDS = 3
WAFERS = 4
RENDER_TARGET_MS = 50.0
MAKESPAN_TARGET = 1.02
SSE_TARGET_MS = 100.0
FINAL = ("PROCESS_COMPLETE", "ABORTED", "STOPPED")
QUIET, IDLE, LIVE = "quiet", "idle", "live"
#: in each page: each event's delay (ms) as the page's own stream hands it over
#: (screen.js's "viaform-event"), in window.__late
LISTEN = """() => {
  window.__late = [];
  document.addEventListener("viaform-event", e => {
    if (typeof e.detail.data.t === "number")
      window.__late.push(Date.now() - e.detail.data.t * 1000);
  });
}"""


def _body(lot_id: str, n: int) -> dict[str, object]:
    return {"lot": {"lot_id": lot_id, "flow": "FLOW-Q",
                    "wafers": [{"slot": i, "id": f"{lot_id}-{i}"} for i in range(1, n + 1)]}}


def _run_lots(http: httpx.Client, lots: dict[str, int]) -> float:
    """Submit the lots at once; the wall time until every one is final."""
    t0 = time.perf_counter()
    for lot_id, n in lots.items():
        http.post("/lots", json=_body(lot_id, n)).raise_for_status()
    for lot_id in lots:
        state = _wait(lambda lot_id=lot_id: (s := http.get(f"/lots/{lot_id}").json()["state"])
                      in FINAL and s, 600.0, f"lot {lot_id} final")
        if state != "PROCESS_COMPLETE":
            raise RuntimeError(f"lot {lot_id} ended {state}")
    return time.perf_counter() - t0


def _render_ms(http: httpx.Client) -> list[float]:
    """``RENDERS`` server times of ``/``, after one that compiles the templates (printed)."""
    first = http.get("/")
    print(f"first GET / (templates compiled): {first.headers.get('server-timing')}")
    out = []
    for _ in range(RENDERS):
        r = http.get("/")
        r.raise_for_status()
        m = re.search(r"page;dur=([\d.]+)", r.headers.get("server-timing", ""))
        if m is None:
            raise RuntimeError("no Server-Timing header on /")
        out.append(float(m.group(1)))
    return out


class StreamTap:
    """``/events`` read on a raw socket in a thread: each event's delay (ms) in ``late``."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(b"GET /events?kinds=job,wafer,step_start,step_end,batch HTTP/1.1\r\n"
                          b"Host: bench\r\nAccept: text/event-stream\r\n\r\n")
        self.late: list[float] = []
        self.thread = threading.Thread(target=self._read, daemon=True, name="sse-tap")
        self.thread.start()

    def _read(self) -> None:
        buf = b""
        try:
            while chunk := self.sock.recv(65536):
                now = time.time()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"data:") and b'"t"' in line:
                        self.late.append((now - json.loads(line[5:])["t"]) * 1e3)
        except OSError:
            pass  # closed by close()

    def close(self) -> list[float]:
        self.sock.close()
        self.thread.join(5.0)
        return self.late


@dataclass
class Runs:
    """Makespans (s) and the lean reader's delays (ms) of one kind of run."""

    spans: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    in_pages: list[float] = field(default_factory=list)
    #: the daemon's CPU seconds (every thread, user + system) during each lot
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.spans)


def _cpu_s(pid: int) -> float:
    """CPU seconds a process has used so far, all its threads (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one(browser: Browser | None, line: Line, http: httpx.Client, lot_id: str, live: bool,
         runs: Runs) -> None:
    """The lot; with ``browser``, ``SESSIONS`` pages on ``/`` first: live (their scripts
    on: the stream, the fragments) or idle (scripts off: the same browser processes and
    pages, asking nothing of the daemon)."""
    contexts = [] if browser is None else [
        browser.new_context(viewport={"width": 1280, "height": 800}, java_script_enabled=live)
        for _ in range(SESSIONS)]
    url = line.url
    try:
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.goto(url + "/")
            if live:
                page.evaluate(LISTEN)
        tap = StreamTap(url)
        cpu0 = _cpu_s(line.daemon.pid)
        runs.spans.append(_run_lots(http, {lot_id: WAFERS}))
        runs.cpu.append(_cpu_s(line.daemon.pid) - cpu0)
        for page in pages if live else ():  # the last refreshes land
            page.wait_for_selector(f"#lot-{lot_id} .badge.st-ok", timeout=10000)
        runs.late += tap.close()
        if live:
            runs.in_pages += [float(x) for page in pages for x in page.evaluate("window.__late")]
    finally:
        for c in contexts:
            c.close()


def _tasks(pid: int) -> list[int]:
    """Every thread of ``pid`` and of its descendant processes (``/proc``), each a task
    whose CPU affinity is its own (Linux)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except FileNotFoundError:
            continue  # ended meanwhile
        out += tids
        for tid in tids:
            try:
                todo += [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text()
                         .split()]
            except FileNotFoundError:
                pass
    return out


def pin(pids: list[int], cpus: set[int]) -> None:
    """Put every thread of these processes and their descendants on ``cpus``; the threads
    and processes they start later inherit it. Twice: a thread started during the first
    pass is caught by the second."""
    for _ in range(2):
        for tid in (t for pid in pids for t in _tasks(pid)):
            try:
                os.sched_setaffinity(tid, cpus)
            except (ProcessLookupError, PermissionError):
                pass  # ended meanwhile


@dataclass(frozen=True)
class Arrangement:
    """Where the line (simulators + daemon) and the clients (this process, its Playwright
    driver, Chromium, the lean reader) run: apart, as a panel on its own machine, or both
    on every CPU, as the browser would on the tool PC itself."""

    name: str
    line: set[int]
    clients: set[int]

    def apply(self, line: Line) -> None:
        pin([os.getpid()], self.clients)  # the line's processes are children: then them
        pin([line.sims.pid, line.daemon.pid], self.line)


def _niced_chromium(tmp: Path) -> str:
    """A launcher for the system Chromium at the lowest CPU priority."""
    launcher = tmp / "chromium-niced"
    launcher.write_text(f'#!/bin/sh\nexec nice -n 19 {CHROMIUM} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


def _arrangements() -> tuple[Arrangement, Arrangement]:
    """Apart (the line on the first CPU this process may use, the clients on the others:
    the target's), and together (everything on every CPU: info)."""
    cpus = sorted(os.sched_getaffinity(0))
    together = Arrangement("together", set(cpus), set(cpus))
    if len(cpus) < 2:
        print("one CPU only: the line and the browser cannot be kept apart; both "
              "arrangements are the same")
        return together, together
    return Arrangement("apart", {cpus[0]}, set(cpus[1:])), together


@dataclass
class Measured:
    big: float = 0.0
    render: list[float] = field(default_factory=list)
    #: (arrangement, kind of run) → its runs
    runs: dict[tuple[str, str], Runs] = field(default_factory=dict)

    def of(self, arrangement: Arrangement, kind: str) -> Runs:
        return self.runs.setdefault((arrangement.name, kind), Runs())


def _measure(tmp: Path) -> Measured:
    apart, together = _arrangements()
    out = Measured()
    line = Line(tmp)
    try:
        apart.apply(line)
        with httpx.Client(base_url=line.url, timeout=30.0, headers=CLI) as http, \
                sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_niced_chromium(tmp),
                                         args=CHROMIUM_ARGS)
            out.big = _run_lots(http, {f"BIG{i}": BIG_WAFERS for i in range(BIG_LOTS)})
            out.render = _render_ms(http)
            _run_lots(http, {"WARM": WAFERS})
            for i in range(ROUNDS):  # interleaved, so that a slow spell hits every kind
                apart.apply(line)
                _one(None, line, http, f"Q{i}", False, out.of(apart, QUIET))
                _one(browser, line, http, f"I{i}", False, out.of(apart, IDLE))
                _one(browser, line, http, f"L{i}", True, out.of(apart, LIVE))
                if together is not apart:
                    together.apply(line)
                    _one(None, line, http, f"TQ{i}", False, out.of(together, QUIET))
                    _one(browser, line, http, f"TL{i}", True, out.of(together, LIVE))
            browser.close()
    finally:
        line.close()
    return out


def _spans(name: str, runs: Runs) -> None:
    print(f"makespan of {WAFERS} wafers, {name:<28} "
          f"{', '.join(f'{x:.2f}' for x in runs.spans)} s (median {runs.median:.2f} s); "
          f"daemon CPU {statistics.median(runs.cpu):.2f} s")


def _late(name: str, xs: list[float]) -> str:
    return (f"{name}: p50 {_pct(xs, 50):.1f} ms, p99 {_pct(xs, 99):.1f} ms, max "
            f"{max(xs, default=float('nan')):.1f} ms ({len(xs)} events)")


def main() -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="bench-screen-"))
    try:
        m = _measure(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    apart, together = _arrangements()
    quiet, idle, live = (m.of(apart, k) for k in (QUIET, IDLE, LIVE))
    p50, p99 = _pct(m.render, 50), _pct(m.render, 99)
    ratio, late99 = live.median / quiet.median, _pct(live.late, 99)
    print(f"{BIG_LOTS} lots x {BIG_WAFERS} wafers in the journal ({m.big:.1f} s at time "
          f"scale {SCALE:g}); GET / server time p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(m.render):.1f} ms ({RENDERS} renders)")
    print(f"line (simulators + daemon) on CPU {sorted(apart.line)}, the browser and this "
          f"process on CPU {sorted(apart.clients)}:")
    for name, runs in (("no browser", quiet), (f"{SESSIONS} idle pages", idle),
                       (f"{SESSIONS} live sessions", live)):
        _spans(name, runs)
    print(f"  (info) idle pages / no browser = {idle.median / quiet.median:.3f}, live "
          f"sessions / idle pages = {live.median / idle.median:.3f}")
    print(_late(f"SSE delivery, lean reader beside {SESSIONS} live sessions", live.late))
    print("  " + _late("the same reader, no browser (info)", quiet.late))
    print("  " + _late("as the pages' JavaScript sees it (info)", live.in_pages))
    if together is not apart:
        t_quiet, t_live = m.of(together, QUIET), m.of(together, LIVE)
        print("(info) all on every CPU, the browser beside the line:")
        _spans("no browser, together", t_quiet)
        _spans(f"{SESSIONS} live sessions, together", t_live)
        print(f"  (info) live / quiet, together = {t_live.median / t_quiet.median:.3f}; "
              + _late("SSE delivery", t_live.late))
    checks = [("/ server time p99", p99, RENDER_TARGET_MS, "ms"),
              ("makespan with 10 live sessions / quiet", ratio, MAKESPAN_TARGET, ""),
              ("SSE delivery p99", late99, SSE_TARGET_MS, "ms")]
    ok = True
    for what, value, target, unit in checks:
        good = value <= target and bool(live.late)
        ok &= good
        print(f"{what} = {value:.3f}{unit} (target <= {target:g}{unit}) "
              f"{'PASS' if good else 'FAIL'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
