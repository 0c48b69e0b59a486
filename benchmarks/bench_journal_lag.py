"""Journal writes and the event loop: the loop's lag during a lot, normal disk vs slow fsync.

The journal commits with ``synchronous=FULL`` on the event-loop thread, so every fsync
SQLite makes blocks the loop: no poll is sent, no HTTP request answered meanwhile. This
runs the same lot twice through the bundled simulators, each time in a fresh child
process (``benchmarks/journal_lag_child.py``) with ``benchmarks/slow_fsync.c`` preloaded
(built here with the machine's ``cc`` into a temp dir): once with no delay (the normal
disk: the shim only counts the fsyncs) and once with every fsync/fdatasync delayed by
``--delay-ms`` (20 ms by default: a slow SD card, a loaded NAS, a disk with its write
cache off). The simulators run in their own process, on the normal disk.

Printed for both, side by side with their ratio: the loop lag's p50/p99/max (a task that
sleeps 1 ms and records how late it wakes), the time the loop spent stalled by more than
5 ms in all, how many of the steps' poll sleeps woke more than 5 ms late (and the p99 of
their lateness), how many tool replies (every driver call: polls and commands) waited
more than 5 ms for the loop to take them, the fsyncs made and how many of them on the
event-loop thread.

Target: with the slow disk the loop's p99 lag stays within the smallest poll period's
wall time at this time scale (10 ms at the demo's 400; at time scale 1 the bar would be
50 ms), and the lot still ends with every wafer processed.

``python -m benchmarks journal_lag [--time-scale X] [--wafers N] [--delay-ms D]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHIM = HERE / "slow_fsync.c"
DEMO_SCALE = 400.0
DEFAULT_WAFERS = 25
DEFAULT_DELAY_MS = 20.0
LATE_S = 0.005  # a poll (or probe) this much late counts as delayed
CHILD_TIMEOUT_S = 900.0


def build_shim(folder: Path) -> Path:
    """Compile the fsync shim into ``folder``; RuntimeError if no C compiler works."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc/gcc) to build the fsync shim")
    out = folder / "slow_fsync.so"
    done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM),
                           "-ldl", "-lpthread"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the fsync shim failed:\n{done.stderr}")
    return out


def run_child(shim: Path, folder: Path, tag: str, scale: float, wafers: int,
              delay_ms: float) -> dict[str, Any]:
    """One lot in a fresh child process with the shim preloaded; its JSON result."""
    out = folder / f"{tag}.json"
    env = {**os.environ, "LD_PRELOAD": str(shim), "VIAFORM_FSYNC_DELAY_MS": f"{delay_ms:g}"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.journal_lag_child", str(out), f"{scale:g}",
         str(wafers), tag],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"the {tag} run failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return dict(json.loads(out.read_text()))


def _pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(r: dict[str, Any]) -> dict[str, float]:
    """The figures printed for one run (times in ms)."""
    lags, late = r["lags"], r["poll_late"]
    return {
        "lag p50": 1e3 * _pct(lags, 0.50),
        "lag p99": 1e3 * _pct(lags, 0.99),
        "lag max": 1e3 * max(lags, default=0.0),
        "stalled": 1e3 * sum(x for x in lags if x > LATE_S),
        "polls": float(len(late)),
        "polls late": float(sum(x > LATE_S for x in late)),
        "poll late p99": 1e3 * _pct(late, 0.99),
        "replies": float(len(r["reply_late"])),
        "replies late": float(sum(x > LATE_S for x in r["reply_late"])),
        "reply late p99": 1e3 * _pct(r["reply_late"], 0.99),
        "fsyncs": float(r["fsyncs"] or 0),
        "loop fsyncs": float(r["loop_fsyncs"] or 0),
        "wall": float(r["wall_s"]),
    }


ROWS = [  # (key, label, unit)
    ("lag p50", "loop lag p50", "ms"),
    ("lag p99", "loop lag p99", "ms"),
    ("lag max", "loop lag max", "ms"),
    ("stalled", "loop stalled > 5 ms, in all", "ms"),
    ("polls", "poll sleeps", ""),
    ("polls late", "poll sleeps woken > 5 ms late", ""),
    ("poll late p99", "poll lateness p99", "ms"),
    ("replies", "tool replies", ""),
    ("replies late", "tool replies picked up > 5 ms late", ""),
    ("reply late p99", "reply pickup delay p99", "ms"),
    ("fsyncs", "fsyncs (all threads)", ""),
    ("loop fsyncs", "fsyncs on the event-loop thread", ""),
    ("wall", "wall time of the lot", "s"),
]


def _fmt(v: float, unit: str) -> str:
    if unit == "":
        return f"{v:.0f}"
    return f"{v:.1f} {unit}" if unit == "s" or v >= 10 else f"{v:.2f} {unit}"


def report(normal: dict[str, Any], slow: dict[str, Any], delay_ms: float) -> bool:
    """Print both runs side by side with ratios and the verdict; True if the target is met."""
    a, b = summary(normal), summary(slow)
    scale = float(normal["scale"])
    poll_ms = 1e3 * min(normal["poll_periods_wall_s"].values())
    bar_ms = poll_ms if scale > 1 else 50.0
    print(f"one lot of {normal['wafers']} wafers, flow A, time scale {scale:g}; smallest "
          f"poll period {poll_ms:.0f} ms wall; fsync delayed by {delay_ms:g} ms in the slow run")
    head = f"  {'':<34}{'normal disk':>14}{'slow fsync':>14}{'ratio':>9}"
    print(head)
    for key, label, unit in ROWS:
        ratio = b[key] / a[key] if a[key] else float("inf") if b[key] else 1.0
        print(f"  {label:<34}{_fmt(a[key], unit):>14}{_fmt(b[key], unit):>14}"
              f"{ratio:>8.1f}×")
    for tag, r in (("normal disk", normal), ("slow fsync", slow)):
        print(f"  {tag}: {r['processed']}/{r['wafers']} processed ({', '.join(r['states'])})")
    all_done = all(r["processed"] == r["wafers"] for r in (normal, slow))
    ok = b["lag p99"] <= bar_ms and all_done
    print(f"  slow-disk loop lag p99 {b['lag p99']:.1f} ms vs bar {bar_ms:.0f} ms (the "
          f"smallest poll period's wall time; 50 ms at time scale 1): "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks journal_lag")
    p.add_argument("--time-scale", type=float, default=DEMO_SCALE)
    p.add_argument("--wafers", type=int, default=DEFAULT_WAFERS)
    p.add_argument("--delay-ms", type=float, default=DEFAULT_DELAY_MS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> bool:
    args = parse(argv or [])
    with tempfile.TemporaryDirectory(prefix="viaform-lag-") as tmp:
        folder = Path(tmp)
        shim = build_shim(folder)
        normal = run_child(shim, folder, "normal", args.time_scale, args.wafers, 0.0)
        slow = run_child(shim, folder, "slow", args.time_scale, args.wafers, args.delay_ms)
    return report(normal, slow, args.delay_ms)


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
