"""One daemon, a big line: 3 exposure cells, 3 ovens, 6 etchers (12 simulated tools).

The simulators (one process, one world) and ``viaform daemon`` (its own process, open on
loopback) at time scale 300, as ``bench_api.Line`` starts them, with a 3-3-6 line. ``LOTS``
lots of 25 of flow A are submitted at once over HTTP; the run ends when every lot is
final. Printed:

- the daemon's CPU (its process's user + system time from ``/proc``, over the run) as a
  share of one core; target < 50 %;
- the makespan against ``bench_lines``' bound from PROCESS.md's nominal figures (the
  issue's formula) and, beside it, the full-batch bound; target bound ÷ makespan ≥ 0.9.
  The makespan is the daemon's own: the first step's start to the last wafer's end, in
  tool seconds, from the journal's wafer transitions.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.bench_api import CLI, Line, _wait
from benchmarks.bench_lines import bound_s, full_batch_bound_s, line_of

SHAPE = (3, 3, 6)
LOTS = 9
SCALE = 300.0
CPU_TARGET = 0.50
RATIO_TARGET = 0.90
FINAL = ("PROCESS_COMPLETE", "ABORTED", "STOPPED")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _body(i: int) -> dict[str, object]:
    return {"lot": {"lot_id": f"BIG{i}", "flow": "FLOW-A",
                    "wafers": [{"slot": k, "id": f"G{i}W{k:02d}"} for k in range(1, 26)]}}


def _makespan_tool_s(db: Path) -> float:
    """First wafer leaving NEEDS_PROCESSING → the last wafer transition (the last one
    final), from the journal (tool s)."""
    with sqlite3.connect(db) as con:
        start = con.execute("SELECT MIN(t) FROM transitions WHERE kind='wafer' AND "
                            "src='NEEDS_PROCESSING'").fetchone()[0]
        end = con.execute("SELECT MAX(t) FROM transitions WHERE kind='wafer'").fetchone()[0]
    return float(end - start)


def main() -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="bench-big-line-"))
    line = Line(tmp, scale=SCALE, line=line_of(SHAPE))
    try:
        with httpx.Client(base_url=line.url, timeout=30.0, headers=CLI) as http:
            cpu0, t0 = _cpu_s(line.daemon.pid), time.perf_counter()
            for i in range(1, LOTS + 1):
                http.post("/lots", json=_body(i)).raise_for_status()
            states = {}
            for i in range(1, LOTS + 1):
                states[i] = _wait(lambda i=i: (s := http.get(f"/lots/BIG{i}").json()["state"])
                                  in FINAL and s, 1800.0, f"lot BIG{i} final")
            wall, cpu = time.perf_counter() - t0, _cpu_s(line.daemon.pid) - cpu0
            processed = sum(w["state"] == "PROCESSED" for i in range(1, LOTS + 1)
                            for w in http.get(f"/lots/BIG{i}").json()["wafers"])
    finally:
        line.close()
    makespan = _makespan_tool_s(tmp / "journal.db")
    shutil.rmtree(tmp, ignore_errors=True)
    share = cpu / wall
    bound, form = bound_s(SHAPE, LOTS)
    tight = full_batch_bound_s(SHAPE, LOTS)
    ratio = bound / makespan
    name = "-".join(map(str, SHAPE))
    print(f"{name} line (12 simulated tools), {LOTS} lots × 25 of flow A at time scale "
          f"{SCALE:g}: {processed}/{LOTS * 25} processed, lots {sorted(set(states.values()))}, "
          f"{wall:.1f} s wall")
    cpu_ok = share < CPU_TARGET
    print(f"daemon CPU {cpu:.1f} s over {wall:.1f} s = {share:.1%} of one core "
          f"(target < {CPU_TARGET:.0%}) {'PASS' if cpu_ok else 'FAIL'}")
    good = ratio >= RATIO_TARGET and processed == LOTS * 25
    print(f"makespan {makespan / 3600:.2f} h; bound {bound / 3600:.2f} h ({form}); ratio "
          f"{ratio:.3f} (target ≥ {RATIO_TARGET}) {'PASS' if good else 'FAIL'}")
    print(f"  full-batch bound {tight / 3600:.2f} h: ratio {tight / makespan:.3f}; the most a "
          f"run of full batches can reach against the issue's bound: {bound / tight:.3f}")
    return cpu_ok and good


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
