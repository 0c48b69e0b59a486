"""Run every ``benchmarks/bench_*.py`` module's ``main()``; exit 1 if any misses a target.

``python -m benchmarks`` runs them all; ``python -m benchmarks scpi`` only ``bench_scpi``.
Options after the names go to the one benchmark named, whose ``main(argv)`` takes them:
``python -m benchmarks crash --points 8 --seed 3``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name.startswith("bench_"))


def run(argv: list[str]) -> int:
    benchmarks.quiet_logs()
    cut = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    selected, options = argv[:cut], argv[cut:]
    names = discover()
    if selected:
        names = [n for n in names if n.removeprefix("bench_") in selected or n in selected]
        if not names:
            print(f"no benchmark matches {selected}; known: {', '.join(discover())}")
            return 2
    if options and len(names) != 1:
        print(f"options {options} need exactly one benchmark named before them")
        return 2
    failed: list[str] = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            ok = module.main(options) if options else module.main()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"{name}: crashed: {type(exc).__name__}: {exc}")
            ok = False
        print(f"--- {name}: {'PASS' if ok else 'FAIL'} ({time.perf_counter() - start:.1f} s)")
        if not ok:
            failed.append(name)
    print(f"\n{len(names) - len(failed)}/{len(names)} benchmarks met their targets"
          + (f"; missed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
