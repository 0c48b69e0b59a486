"""The operator's screen: ``/`` server time, and what 10 open browsers cost a running lot.

Two processes and a browser, as on a tool PC: the simulators and ``viaform daemon``
(``bench_api.Line``: open daemon on loopback, time scale 1000), and headless Chromium
(Debian's, through Playwright) in this one.

1. ``/`` server time with 4 lots × 25 wafers in the journal (the four lots run to the
   end first, then ``GET /`` 50 times after one that compiles the templates; the
   daemon's own ``Server-Timing`` header gives the time from the request to the
   rendered page). Target: p99 ≤ 50 ms.
2. The same 4-wafer lot quiet (no browser) and with 10 browser sessions (10 contexts,
   each its own session cookie, each on ``/`` with its live updates), interleaved
   quiet, loaded, quiet, loaded …; medians compared. Target: loaded / quiet ≤ 1.02.
   Side by side, in the loaded runs, a lean reader of ``/events`` (a socket on a thread
   of this process, one more subscriber beside the pages' ten) notes how late each
   event arrives: its receipt time − the event's own time ``t``, on the same machine
   clock. Target: p99 ≤ 100 ms. Printed beside it: the same reader in the quiet runs, and
   the delay as the pages' JavaScript sees it (a second EventSource in each page: the
   stream plus a busy renderer's event loop).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
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
#: in each page: a second EventSource noting each event's delay (ms) in window.__late
LISTEN = """() => {
  window.__late = [];
  const es = new EventSource("/events?kinds=job,wafer,step_start,step_end,batch");
  const note = e => window.__late.push(Date.now() - JSON.parse(e.data).t * 1000);
  ["job", "wafer", "step_start", "step_end", "batch"].forEach(k => es.addEventListener(k, note));
  return new Promise(ok => es.addEventListener("hello", () => ok(true)));
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


def _loaded(browser: Browser, url: str, http: httpx.Client, lot_id: str
            ) -> tuple[float, list[float], list[float]]:
    """The lot with ``SESSIONS`` browser sessions open: its makespan, the stream's delays
    at a lean reader and in the pages."""
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800})
                for _ in range(SESSIONS)]
    try:
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.goto(url + "/")
            page.evaluate(LISTEN)
        tap = StreamTap(url)
        span = _run_lots(http, {lot_id: WAFERS})
        for page in pages:  # the last refreshes land
            page.wait_for_selector(f"#lot-{lot_id} .badge.st-ok", timeout=10000)
        late = tap.close()
        in_pages = [float(x) for page in pages for x in page.evaluate("window.__late")]
    finally:
        for c in contexts:
            c.close()
    return span, late, in_pages


def main() -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="bench-screen-"))
    line = Line(tmp)
    try:
        with httpx.Client(base_url=line.url, timeout=30.0, headers=CLI) as http, \
                sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            big = _run_lots(http, {f"BIG{i}": BIG_WAFERS for i in range(BIG_LOTS)})
            render = _render_ms(http)
            _run_lots(http, {"WARM": WAFERS})
            quiet: list[float] = []
            loaded: list[float] = []
            late: list[float] = []
            in_pages: list[float] = []
            quiet_late: list[float] = []
            for i in range(ROUNDS):
                tap = StreamTap(line.url)
                quiet.append(_run_lots(http, {f"Q{i}": WAFERS}))
                quiet_late += tap.close()
                span, ls, ps = _loaded(browser, line.url, http, f"L{i}")
                loaded.append(span)
                late += ls
                in_pages += ps
            browser.close()
    finally:
        line.close()
        shutil.rmtree(tmp, ignore_errors=True)
    p50, p99 = _pct(render, 50), _pct(render, 99)
    q, ld = statistics.median(quiet), statistics.median(loaded)
    ratio, late99 = ld / q, _pct(late, 99)
    print(f"{BIG_LOTS} lots x {BIG_WAFERS} wafers in the journal ({big:.1f} s at time scale "
          f"{SCALE:g}); GET / server time p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(render):.1f} ms ({RENDERS} renders)")
    print(f"makespan of {WAFERS} wafers quiet  {', '.join(f'{x:.2f}' for x in quiet)} s "
          f"(median {q:.2f} s)")
    print(f"makespan with {SESSIONS} browsers {', '.join(f'{x:.2f}' for x in loaded)} s "
          f"(median {ld:.2f} s)")
    print(f"SSE delivery, lean reader beside {SESSIONS} pages: p50 {_pct(late, 50):.1f} ms, "
          f"p99 {late99:.1f} ms, max {max(late, default=float('nan')):.1f} ms "
          f"({len(late)} events)")
    print(f"  the same reader in the quiet runs (info): p50 {_pct(quiet_late, 50):.1f} ms, p99 "
          f"{_pct(quiet_late, 99):.1f} ms ({len(quiet_late)} events)")
    print(f"  as the pages' JavaScript sees it (info): p50 {_pct(in_pages, 50):.1f} ms, p99 "
          f"{_pct(in_pages, 99):.1f} ms ({len(in_pages)} events)")
    checks = [("/ server time p99", p99, RENDER_TARGET_MS, "ms"),
              ("makespan with browsers / quiet", ratio, MAKESPAN_TARGET, ""),
              ("SSE delivery p99", late99, SSE_TARGET_MS, "ms")]
    ok = True
    for what, value, target, unit in checks:
        good = value <= target and bool(late)
        ok &= good
        print(f"{what} = {value:.3f}{unit} (target <= {target:g}{unit}) "
              f"{'PASS' if good else 'FAIL'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
