"""Lines of any shape: makespan against the manuals' bound, the planner, sequencer CPU.

For each line shape E-O-T (exposure cells, ovens, etchers) 1-1-1, 1-1-2, 1-2-2, 2-2-3,
``LOTS`` lots of 25 (flow A) run through the simulators (their own process, spawned, so
this process's CPU is the sequencer's) at time scale 2000, and the planner predicts the
same run first. Printed per shape:

- the bound from PROCESS.md's nominal figures per lot of 25 (fill 65 min exposing on one
  cell, cure 210 min a batch, etch 135 min on one etcher), the issue's formula: the
  largest of  fill/E + n·cure/O + etch/T  (oven-bound),  n·fill/E + cure + etch/T
  (exposure-bound) and  fill/E + cure + n·etch/T  (etch-bound); the one used is named;
  target bound ÷ makespan ≥ 0.95. For information also a bound that counts that oven j
  cannot start before j lots are exposed: fill/E·(O+1)/2 + n·cure/O + etch/T;
- the planner's wall time for the shape and its makespan error against the run;
- the sequencer's CPU per wafer (``time.process_time`` of this process), target ≤ 10 ms.

Cut to keep ``make bench`` short: 10 lots are planned (the planner's figures) but not
run, and the 12-tool daemon at time scale 300 is not part of this benchmark yet.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.bench_schedule import SimProcess
from sequencer.line.assemble import run_lot_objects
from sequencer.line.simhost import tools_config_for
from sequencer.process.lots import load_lot
from sequencer.process.recipes import Lot, LotWafer
from sequencer.runner.planner import plan
from sequencer.runner.steps import SequencerConfig

SHAPES = ((1, 1, 1), (1, 1, 2), (1, 2, 2), (2, 2, 3))
LOTS = 4
PLANNED_ONLY_LOTS = 10
TIME_SCALE = 2000.0
RATIO_TARGET = 0.95
CPU_TARGET_MS = 10.0
PLANNER_TARGET_S = 1.0  # 4 × 25 on 1-1-1
FILL_MIN, CURE_MIN, ETCH_MIN = 65.0, 210.0, 135.0  # PROCESS.md, per lot of 25
DEMO = Path(__file__).resolve().parent.parent / "configs" / "lots" / "demo.yaml"


def line_of(shape: tuple[int, int, int]) -> dict[str, str]:
    """Tool name → kind: ``exposure``, ``exposure-2`` …"""
    line: dict[str, str] = {}
    for kind, n in zip(("exposure", "oven", "etcher"), shape, strict=True):
        for j in range(n):
            line[kind if j == 0 else f"{kind}-{j + 1}"] = kind
    return line


def bound_s(shape: tuple[int, int, int], n: int) -> tuple[float, str]:
    """The issue's bound (tool s) and the form used."""
    e, o, t = shape
    forms = {"oven-bound fill/E + n·cure/O + etch/T": FILL_MIN / e + n * CURE_MIN / o
             + ETCH_MIN / t,
             "exposure-bound n·fill/E + cure + etch/T": n * FILL_MIN / e + CURE_MIN
             + ETCH_MIN / t,
             "etch-bound fill/E + cure + n·etch/T": FILL_MIN / e + CURE_MIN + n * ETCH_MIN / t}
    name = max(forms, key=lambda k: forms[k])
    return forms[name] * 60.0, name


def staggered_bound_s(shape: tuple[int, int, int], n: int) -> float:
    e, o, t = shape
    return (FILL_MIN / e * (o + 1) / 2 + n * CURE_MIN / o + ETCH_MIN / t) * 60.0


def lots_of(n: int) -> list[Lot]:
    base = load_lot(DEMO)
    return [replace(base, lot_id=f"BL{i}", wafers=tuple(
        LotWafer(k, f"B{i}W{k:02d}") for k in range(1, 26))) for i in range(1, n + 1)]


def run_shape(shape: tuple[int, int, int], folder: Path) -> dict[str, float]:
    lots = lots_of(LOTS)
    with SimProcess(TIME_SCALE, line=line_of(shape)) as endpoints:
        db = folder / f"lines-{'-'.join(map(str, shape))}.db"
        cfg = tools_config_for(endpoints, TIME_SCALE, journal=str(db))
        config = SequencerConfig.from_tools(cfg)
        t0 = time.perf_counter()
        predicted = plan(lots, cfg.kinds, config)
        plan_wall = time.perf_counter() - t0
        planned_10 = plan(lots_of(PLANNED_ONLY_LOTS), cfg.kinds, config)
        cpu0 = time.process_time()
        report = asyncio.run(run_lot_objects(lots, cfg, db))
        cpu = time.process_time() - cpu0
    wafers = sum(len(lot.wafers) for lot in lots)
    processed = sum(r.state == "PROCESSED" for r in report.rows)
    return {"makespan": report.makespan_s, "predicted": predicted.makespan_s,
            "plan_wall": plan_wall, "cpu_ms": 1000 * cpu / wafers,
            "processed": processed, "wafers": wafers, "planned_10": planned_10.makespan_s}


def main() -> bool:
    import benchmarks

    benchmarks.quiet_logs()
    ok = True
    print(f"{LOTS} lots × 25, flow A, time scale {TIME_SCALE:g}; bound from PROCESS.md's "
          f"nominal figures per lot: fill {FILL_MIN:g} min, cure {CURE_MIN:g} min, "
          f"etch {ETCH_MIN:g} min")
    with tempfile.TemporaryDirectory(prefix="viaform-lines-") as tmp:
        for shape in SHAPES:
            m = run_shape(shape, Path(tmp))
            name = "-".join(map(str, shape))
            bound, form = bound_s(shape, LOTS)
            ratio = bound / m["makespan"]
            error = (m["predicted"] - m["makespan"]) / m["makespan"]
            b10, _ = bound_s(shape, PLANNED_ONLY_LOTS)
            good = ratio >= RATIO_TARGET and m["processed"] == m["wafers"]
            ok &= good
            print(f"\n{name}: bound {bound / 3600:.2f} h ({form}); makespan "
                  f"{m['makespan'] / 3600:.2f} h; ratio {ratio:.3f} (target ≥ "
                  f"{RATIO_TARGET}) {'PASS' if good else 'FAIL'}; "
                  f"{int(m['processed'])}/{int(m['wafers'])} processed")
            print(f"  (info: staggered-oven bound {staggered_bound_s(shape, LOTS) / 3600:.2f} h, "
                  f"ratio {staggered_bound_s(shape, LOTS) / m['makespan']:.3f})")
            cpu_ok = m["cpu_ms"] <= CPU_TARGET_MS
            ok &= cpu_ok
            print(f"  planner: {m['plan_wall']:.3f} s wall, predicted "
                  f"{m['predicted'] / 3600:.2f} h, error {error:+.2%}; 10 lots planned: "
                  f"{m['planned_10'] / 3600:.2f} h, bound ratio "
                  f"{b10 / m['planned_10']:.3f} (planned, not run)")
            print(f"  sequencer CPU {m['cpu_ms']:.1f} ms/wafer (target ≤ {CPU_TARGET_MS:g}) "
                  f"{'PASS' if cpu_ok else 'FAIL'}")
            if shape == (1, 1, 1):
                fast = m["plan_wall"] <= PLANNER_TARGET_S
                ok &= fast
                print(f"  planner 4 × 25 on 1-1-1 ≤ {PLANNER_TARGET_S:g} s: "
                      f"{'PASS' if fast else 'FAIL'}")
    return ok


if __name__ == "__main__":
    import sys

    sys.exit(0 if main() else 1)
