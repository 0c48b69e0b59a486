"""Crash-point campaign: kill ``viaform run`` at the Nth journal write, rerun, check the tools.

Random SIGKILLs seldom land while a command is in flight; this kills the runner exactly
at chosen journal writes (the hidden hook of ``sequencer/store/crashpoint.py``:
``VIAFORM_CRASH_AT=N`` → ``os._exit(97)`` before write N). The simulators run as their
own process (``viaform sim``), so the tools and the simulated world outlive every killed
runner, as real tools would.

For each crash point: a fresh lot of 2 wafers of flow A (ids ``C<point>W1``,
``C<point>W2``: the tools count jobs per wafer id, so points never interfere) and a
fresh journal. ``viaform run`` with the hook must end with 97; the rerun without it
must end (bounded). Then the invariants, from the tools' own records:

- exposed ≤ 1 and etched ≤ 1: ``JOB:COUNt? <w>`` on the LX-365 and the PE-200 (plain
  sockets), and the world's exposure, develop and etch counts;
- etched only after a complete cure: the world's history has the wafer's oven
  "cure complete" before its etch start, at degree of cure ≥ 0.9;
- no wafer lost: every wafer in the world, and in the stocker or on a tool where the
  journal records it; the journal gives every wafer a final E90 state (with a reason
  when not PROCESSED);
- every tool left safe (SCPI tools IDLE, oven not heating or running, no wafer in any),
  or holding a wafer the journal records there, or held with an open alarm.

The points are chosen from a dry run (``VIAFORM_CRASH_LOG``) of the same lot: spread
over the whole lot and stratified by kind (intents, outcomes, wafer fates, other
writes) and, with ``--faults`` (the default), make-safe steps: a variant lot whose
first wafer's etch is tripped by ``rf_reflected`` (injected through the control port
when it is ETCHING), crashed at the writes from that alarm until the wafer is back in the stocker.

``python -m benchmarks crash [--points N] [--seed S] [--time-scale X] [--no-faults]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from sequencer.line.simhost import SimControlClient, SimControlError, tools_config_for
from sequencer.store.crashpoint import CRASH_EXIT_CODE

from . import crash_checks

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "configs" / "recipes"
DEFAULT_POINTS = 100
DEFAULT_SCALE = 3000.0
RUN_TIMEOUT_S = 90.0  # wall seconds one `viaform run` of a 2-wafer lot may take
KINDS = ("intent", "outcome", "fate", "other", "make-safe")


@dataclass(frozen=True)
class Point:
    """Crash at write ``n`` of the lot ``variant`` ("clean" or "fault")."""

    variant: str
    n: int
    kind: str
    detail: str = ""
    stratum: str = ""  # the kind it was chosen as (make-safe: a write of that window)


@dataclass
class Outcome:
    point: Point
    problems: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)


def _viaform() -> str:
    exe = Path(sys.executable).with_name("viaform")
    return str(exe) if exe.exists() else shutil.which("viaform") or "viaform"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SimLine:
    """``viaform sim`` in its own process on free ports, and the tools.yaml that names it."""

    def __init__(self, folder: Path, time_scale: float, seed: int) -> None:
        self.folder = folder
        self.time_scale = time_scale
        self.seed = seed
        self.tools = folder / "tools.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, dict[str, Any]] = {}

    def _write_tools(self) -> None:
        ports = dict(zip(("exposure", "etcher", "oven", "control"), _free_ports(4), strict=True))
        self.endpoints = {t: {"tcp": ("127.0.0.1", p)} for t, p in ports.items()}
        cfg = tools_config_for(self.endpoints, self.time_scale,
                               journal=str(self.folder / "unused.db"))
        doc: dict[str, Any] = {"time_scale": self.time_scale,
                               "journal": str(self.folder / "unused.db"),
                               "handling": "sim", "handling_timeout_s": 3600}
        for tool, entry in cfg.entries.items():
            entry = {k: v for k, v in entry.items() if k != "pty"}
            doc[tool] = {**entry, "sim": {"host": "127.0.0.1", "port": ports[tool]}}
        doc["sim_control"] = dict(cfg.sim_control)
        self.tools.write_text(yaml.safe_dump(doc, sort_keys=False))

    def start(self) -> None:
        for _attempt in range(3):  # a free port taken meanwhile: choose others
            self._write_tools()
            log = (self.folder / "sim.log").open("wb")
            self.proc = subprocess.Popen(
                [_viaform(), "sim", "--config", str(self.tools), "--time-scale",
                 f"{self.time_scale:g}", "--seed", str(self.seed)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
            deadline = time.monotonic() + 30
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    self.control().close()
                    return
                except SimControlError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"viaform sim did not start:\n{(self.folder / 'sim.log').read_text()}")

    def control(self) -> SimControlClient:
        client = SimControlClient(*self.endpoints["control"]["tcp"])
        client.world()  # raises SimControlError when it does not answer
        return client

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _write_lot(folder: Path, lot_id: str, wafers: list[str]) -> Path:
    lots = folder / "lots"
    lots.mkdir(exist_ok=True)
    if not (folder / "recipes").is_dir():
        shutil.copytree(RECIPES, folder / "recipes")
    path = lots / f"{lot_id}.yaml"
    slots = [{"slot": i, "id": w} for i, w in enumerate(wafers, start=1)]
    path.write_text(yaml.safe_dump({"lot": {"lot_id": lot_id, "flow": "FLOW-A",
                                            "wafers": slots}}, sort_keys=False))
    return path


def _control(line: SimLine, op: str, *args: Any) -> None:
    client = line.control()
    try:
        getattr(client, op)(*args)
    finally:
        client.close()


def _ack_open_holds(line: SimLine, db: Path, acked: set[int]) -> None:
    """A technician acknowledges each open TOOL_HELD alarm of the etcher in the journal
    (``viaform alarms --ack ID``, no daemon: written into the journal file)."""
    for aid in crash_checks.open_holds(db, "etcher"):
        if aid not in acked:
            acked.add(aid)
            cmd = [_viaform(), "alarms", "--ack", str(aid), "--config", str(line.tools),
                   "--db", str(db), "--daemon", "none"]
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               cwd=REPO, env=crash_checks.base_env(), timeout=30, check=False)
            if r.returncode:
                print(f"viaform alarms --ack {aid} failed ({r.returncode})"
                      f"{crash_checks.tail(r.stderr)}")


@contextmanager
def _rf_trip(line: SimLine, wafer: str, db: Path) -> Iterator[None]:
    """While inside: trip the etcher with ``rf_reflected`` once ``wafer`` is ETCHING, clear
    the fault (the match network fixed) once the etcher is in ALARM, then acknowledge the
    hold viaform raises for it, as the technician would."""
    stop = threading.Event()

    def watch() -> None:
        injected = cleared = False
        acked: set[int] = set()
        while not stop.is_set():
            if cleared:
                _ack_open_holds(line, db, acked)
                time.sleep(0.05)
                continue
            try:
                st = crash_checks.scpi(line.endpoints, "etcher", "SYST:STAT?;:WAF:ID?")
            except OSError:
                time.sleep(0.01)
                continue
            state, _, on = st.partition(";")
            if not injected and state == "ETCHING" and on == wafer:
                _control(line, "inject", "etcher", "rf_reflected")
                injected = True
            elif injected and state == "ALARM":
                _control(line, "clear", "etcher", "rf_reflected")
                cleared = True
            time.sleep(0.0005)

    thread = threading.Thread(target=watch, name="rf-trip", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


class Campaign:
    """One simulator process; lots, journals and logs in ``folder``."""

    def __init__(self, folder: Path, line: SimLine) -> None:
        self.folder = folder
        self.line = line
        self.serial = 0

    def run(self, lot: Path, db: Path, tag: str, env: dict[str, str]) -> tuple[int, str]:
        """``viaform run LOT --config TOOLS --db DB --plain``; (exit code, stderr)."""
        err = self.folder / f"{tag}.err"
        with (self.folder / f"{tag}.out").open("wb") as out, err.open("wb") as errf:
            proc = subprocess.Popen(
                [_viaform(), "run", str(lot), "--config", str(self.line.tools), "--db", str(db),
                 "--plain"], stdout=out, stderr=errf, stdin=subprocess.DEVNULL, cwd=REPO,
                env={**crash_checks.base_env(), "COLUMNS": "200", **env})
            try:
                code = proc.wait(RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                code = -9
        return code, err.read_text(errors="replace")

    def lot(self, variant: str) -> tuple[str, list[str], Path, Path]:
        self.serial += 1
        p = self.serial
        lot_id = f"CRASH-{p}"
        wafers = [f"C{p}W1", f"C{p}W2"]
        return lot_id, wafers, _write_lot(self.folder, lot_id, wafers), self.folder / f"p{p}.db"

    @contextmanager
    def _variant(self, variant: str, wafers: list[str], db: Path) -> Iterator[None]:
        if variant == "fault":
            with _rf_trip(self.line, wafers[0], db):
                yield
        else:
            yield

    def dry_run(self, variant: str) -> list[Point]:
        """The lot run once to its end, with every journal write listed."""
        _, wafers, lot, db = self.lot(variant)
        log = self.folder / f"writes-{variant}.tsv"
        with self._variant(variant, wafers, db):
            code, err = self.run(lot, db, f"dry-{variant}", {"VIAFORM_CRASH_LOG": str(log)})
        if variant == "fault":
            self.technician_clears()
        if code not in (0, 1) or "Traceback" in err:
            raise RuntimeError(f"the dry run ({variant}) ended with {code}:\n{err[-2000:]}")
        points = []
        for row in log.read_text().splitlines():
            n, kind, _table, *detail = row.split("\t")
            points.append(Point(variant, int(n), kind, detail[0] if detail else ""))
        return points

    def crash(self, point: Point) -> Outcome:
        lot_id, wafers, lot, db = self.lot(point.variant)
        tag = f"p{self.serial}"
        result = Outcome(point)
        with self._variant(point.variant, wafers, db):
            code, err = self.run(lot, db, f"{tag}-crash", {"VIAFORM_CRASH_AT": str(point.n)})
            if code != CRASH_EXIT_CODE:
                result.problems.append(f"the run did not crash at write {point.n} "
                                       f"(exit {code}){crash_checks.tail(err)}")
            code, err = self.run(lot, db, f"{tag}-rerun", {})
        if code not in (0, 1) or "Traceback" in err:
            what = "did not end" if code == -9 else f"ended with {code}"
            result.problems.append(f"the rerun {what}{crash_checks.tail(err)}")
        try:
            problems, result.states = crash_checks.check(self.line.endpoints, db, wafers)
        except (OSError, SimControlError) as exc:  # a tool that does not answer is a finding
            problems = [f"could not read the tools' records: {type(exc).__name__}: {exc}"]
        result.problems += problems
        if point.variant == "fault":
            self.technician_clears()
        return result

    def technician_clears(self) -> None:
        """What a person does after the rf_reflected trip (the match network is fixed):
        clear the etcher's alarm at the tool, so the next lot finds it IDLE."""
        eps = self.line.endpoints
        if crash_checks.scpi(eps, "etcher", "SYST:STAT?") == "ALARM":
            on = crash_checks.scpi(eps, "etcher", "WAF:ID?")
            if on != "NONE":
                crash_checks.scpi(eps, "etcher", "WAF:UNL;*OPC?")
                _control(self.line, "transfer", [on], "stocker")
            crash_checks.scpi(eps, "etcher", "ALAR:CLE;*OPC?")


def choose(dry: dict[str, list[Point]], count: int, seed: int) -> list[Point]:
    """``count`` points stratified by kind, each stratum spread over the whole lot."""
    strata: dict[str, list[Point]] = {k: [] for k in KINDS}
    for p in dry.get("clean", []):
        strata[p.kind if p.kind in ("intent", "outcome", "fate") else "other"].append(p)
    strata["make-safe"] = crash_checks.make_safe_window(dry.get("fault", []))
    strata = {k: [replace(p, stratum=k) for p in v] for k, v in strata.items()}
    strata = {k: v for k, v in strata.items() if v}
    rng = random.Random(seed)
    share = {k: 0 for k in strata}
    left = min(count, sum(map(len, strata.values())))
    while left:  # round-robin: every kind gets its share while it has writes left
        for k in strata:
            if left and share[k] < len(strata[k]):
                share[k] += 1
                left -= 1
    chosen: list[Point] = []
    for k, pts in strata.items():
        n = share[k]
        if n == 0:
            continue
        # split the stratum into n consecutive chunks and take one write from each at random
        bounds = [round(i * len(pts) / n) for i in range(n + 1)]
        chosen += [pts[rng.randrange(lo, hi)] for lo, hi in zip(bounds, bounds[1:], strict=False)
                   if hi > lo]
    return sorted(chosen, key=lambda p: (p.variant, p.n))


def campaign(points: int, seed: int, time_scale: float, faults: bool,
             out: Any = print) -> tuple[int, int]:
    """Run the campaign; (crash points, points that held every invariant)."""
    with tempfile.TemporaryDirectory(prefix="viaform-crash-") as tmp:
        folder = Path(tmp)
        line = SimLine(folder, time_scale, seed)
        line.start()
        try:
            camp = Campaign(folder, line)
            dry = {"clean": camp.dry_run("clean")}
            if faults:
                dry["fault"] = camp.dry_run("fault")
            chosen = choose(dry, points, seed)
            kinds: dict[str, int] = {}
            for p in chosen:
                kinds[p.stratum] = kinds.get(p.stratum, 0) + 1
            out(f"dry run: {len(dry['clean'])} journal writes a lot of 2 wafers"
                + (f"; {len(dry['fault'])} with rf_reflected on its first etch" if faults else "")
                + f"; {len(chosen)} points: "
                + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
            held = 0
            start = time.perf_counter()
            for p in chosen:
                result = camp.crash(p)
                if result.problems:
                    out(f"FAIL {p.variant} write {p.n} ({p.kind} {p.detail}".rstrip() + "): "
                        + "; ".join(result.problems))
                else:
                    held += 1
            out(f"({time.perf_counter() - start:.0f} s wall, "
                f"{(time.perf_counter() - start) / max(1, len(chosen)):.1f} s a point)")
        finally:
            line.stop()
    out(f"{len(chosen)} crash points, {held} held the invariants")
    return len(chosen), held


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks crash", description=__doc__.split(
        "\n")[0])
    ap.add_argument("--points", type=int, default=DEFAULT_POINTS, help="crash points (≥ 1)")
    ap.add_argument("--seed", type=int, default=1, help="choice of points and sim seed")
    ap.add_argument("--time-scale", type=float, default=DEFAULT_SCALE,
                    help="tool seconds per wall second (≥ 2000 keeps a point short)")
    ap.add_argument("--faults", action=argparse.BooleanOptionalAction, default=True,
                    help="also crash the make-safe steps after an rf_reflected etch "
                         "(default; --no-faults for the clean lot only)")
    args = ap.parse_args(argv)
    if args.points < 1 or not args.time_scale > 0:
        ap.error("--points must be ≥ 1 and --time-scale > 0")
    return args


def main(argv: list[str] | None = None) -> bool:
    args = parse(argv or [])
    total, held = campaign(args.points, args.seed, args.time_scale, args.faults)
    return total > 0 and held == total


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
