"""Shared helpers of the end-to-end flow, crash and fault tests (not a test module).

- Lots and recipes in ``tmp_path``: :func:`write_lot` writes ``lots/<id>.yaml`` and
  copies ``configs/recipes`` to ``recipes/`` beside it (a lot finds its flow in
  ``../recipes``), so a test may add its own recipe variants there.
- The line: :func:`write_tools_yaml` writes a ``tools.yaml`` pointing at a test's own
  :class:`SimThread` (every key ``sequencer.line.config.load_tools`` reads);
  :class:`SeqProcess` runs ``viaform run`` on it as a subprocess (killable);
  :func:`run_in_thread` runs ``run_lot_objects`` in-process on a thread while the test
  watches the tools and injects faults.
- The verdicts: :func:`assert_world_sound` checks the simulated world (what physically
  happened to each wafer) against the sequencer's guarantees; :func:`journal_states`
  and friends read the journal the run left.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import crash_checks
from sequencer.line.assemble import run_lot_objects
from sequencer.line.simhost import SimControlClient, tools_config_for
from sequencer.process.lots import load_lot
from sequencer.runner.alarms import Event
from sequencer.runner.run_report import RunReport
from sequencer.states.substrate import FINAL
from simulators.runner import SimThread
from tests.sqlitekit import connected

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "recipes"
LOTS = REPO / "configs" / "lots"
MIN_DEGREE_OF_CURE = 0.9  # a wafer counts as cured at α ≥ 0.9 (CURE-PBO-320 reaches ~1.0)


# ---------------------------------------------------------------- lots and tools
def write_lot(tmp_path: Path, lot_id: str, flow: str, wafer_ids: Iterable[str]) -> Path:
    """A lot file ``tmp_path/lots/<lot_id>.yaml``; recipes copied to ``tmp_path/recipes``."""
    recipes = tmp_path / "recipes"
    if not recipes.is_dir():
        shutil.copytree(RECIPES, recipes)
    lots = tmp_path / "lots"
    lots.mkdir(exist_ok=True)
    path = lots / f"{lot_id}.yaml"
    wafers = [{"slot": i, "id": w} for i, w in enumerate(wafer_ids, start=1)]
    path.write_text(yaml.safe_dump({"lot": {"lot_id": lot_id, "flow": flow, "wafers": wafers}},
                                   sort_keys=False))
    return path


def write_recipe(tmp_path: Path, kind: str, body: dict[str, Any]) -> Path:
    """A recipe or flow document (``kind``: cure, flow, ...) in ``tmp_path/recipes``."""
    path = tmp_path / "recipes" / f"{body['name']}.yaml"
    path.write_text(yaml.safe_dump({kind: body}, sort_keys=False))
    return path


def lot_wafers(lotfile: Path) -> list[str]:
    return [w.wafer_id for w in load_lot(lotfile).wafers]


def write_tools_yaml(path: Path, sims: SimThread, journal: Path) -> Path:
    """``tools.yaml`` for the simulators of ``sims`` at their time scale, as load_tools reads."""
    scale = sims.clock.time_scale
    cfg = tools_config_for(sims.endpoints, scale, journal=str(journal))
    doc: dict[str, Any] = {
        "time_scale": scale,
        "journal": str(journal),
        "handling": "sim",
        "handling_timeout_s": 3600,
        **{tool: dict(entry) for tool, entry in cfg.entries.items()},
        "sim_control": dict(cfg.sim_control),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ---------------------------------------------------------------- waiting
def wait_for(pred: Callable[[], Any], timeout_s: float, what: str,
             interval_s: float = 0.0005) -> Any:
    """Poll ``pred`` until it returns something truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def events(sims: SimThread, wafer_id: str) -> list[tuple[float, str, str]]:
    """The wafer's history in the simulated world, read in-process (fast enough to poll)."""
    world = sims.world
    with world.lock:
        w = world.wafers.get(wafer_id)
        return list(w.history) if w else []


def has_event(sims: SimThread, wafer_id: str, tool: str, *words: str) -> bool:
    return any(t == tool and all(x in ev for x in words) for _, t, ev in events(sims, wafer_id))


def tool_state(sims: SimThread, tool: str) -> str:
    """A SCPI simulator's state name, or the oven's program state name (read in-process)."""
    st = sims.tools[tool].state
    return str(getattr(st, "value", st)) if tool != "oven" else st.name


def world_snapshot(sims: SimThread) -> dict[str, Any]:
    """The world as `viaform sim world` prints it, over the simulators' control port."""
    host, port = sims.endpoints["control"]["tcp"]
    client = SimControlClient(host, port)
    try:
        return client.world()
    finally:
        client.close()


def scpi(sims: SimThread, tool: str, line: str, timeout_s: float = 2.0) -> str:
    """One query to a SCPI simulator over a plain TCP socket (not our driver); the crash
    campaign's own plain client."""
    return crash_checks.scpi(sims.endpoints, tool, line, timeout_s)


def oven_reading(sims: SimThread) -> dict[str, Any]:
    """The oven simulator's program state, heater contactor, chamber temperature and door."""
    oven = sims.tools["oven"]

    def read() -> dict[str, Any]:
        oven.tick()
        return {"state": oven.state.name, "contactor": oven.contactor,
                "chamber_c": oven.phys.chamber_c, "locked": oven.locked,
                "cassette": list(oven.cassette)}

    return sims.call(read)


# ---------------------------------------------------------------- the world verdict
def _first(history: list[dict[str, Any]], tool: str | set[str], *words: str) -> float | None:
    tools = {tool} if isinstance(tool, str) else tool
    for h in history:
        if h["tool"] in tools and all(w in h["event"] for w in words):
            return float(h["t"])
    return None


def _of(w: dict[str, Any], kind: str, step: str) -> set[str]:
    """The names of the tools of ``kind`` that ran ``step`` on the wafer (and the kind's
    own name: the classic line's tool)."""
    return {kind, *w.get("ran", {}).get(step, ())}


def world_problems(world: dict[str, Any], wafer_ids: Iterable[str], *,
                   processed: Iterable[str] | None = None,
                   may_stay: Iterable[str] = ()) -> list[str]:
    """Everything wrong with the world for these wafers (empty: sound).

    Every wafer: in the world (not lost), back in the stocker (unless in ``may_stay``),
    exposed and developed at most once, etched at most once, and an etched wafer was
    cured (a completed oven batch, α ≥ 0.9) before its etch began, after its develop.
    ``processed`` (default: all) must also be complete: exposed once, developed, cured,
    etched once, every via open.
    """
    wafers = world["wafers"]
    ids = list(wafer_ids)
    done = set(ids if processed is None else processed)
    stay = set(may_stay)
    bad: list[str] = []
    for wid in ids:
        w = wafers.get(wid)
        if w is None:
            bad.append(f"{wid}: lost (not in the simulated world)")
            continue
        hist = w["history"]
        if w["location"] != "stocker" and wid not in stay:
            bad.append(f"{wid}: left at {w['location']}")
        if w["exposures"] > 1:
            bad.append(f"{wid}: exposed {w['exposures']} times")
        if w["developed"] > 1:
            bad.append(f"{wid}: developed {w['developed']} times")
        if w["etches"] > 1:
            bad.append(f"{wid}: etched {w['etches']} times")
        develop = _first(hist, _of(w, "exposure", "expose"), "DEVELOP DONE")
        cure_start = _first(hist, _of(w, "oven", "cure"), "cure start")
        cure_done = _first(hist, _of(w, "oven", "cure"), "cure complete")
        etch = _first(hist, _of(w, "etcher", "etch"), "etch job", "start")
        if cure_start is not None and (develop is None or develop > cure_start):
            bad.append(f"{wid}: in a cure started before it was developed")
        if etch is not None:
            if cure_done is None or cure_done > etch:
                bad.append(f"{wid}: etched before its cure completed")
            elif w["degree_of_cure"] < MIN_DEGREE_OF_CURE:
                bad.append(f"{wid}: etched at degree of cure {w['degree_of_cure']:.2f}")
        if wid in done:
            if w["exposures"] != 1 or w["developed"] != 1:
                bad.append(f"{wid}: not exposed+developed exactly once "
                           f"({w['exposures']}/{w['developed']})")
            if not w["cure_batches"] or cure_done is None:
                bad.append(f"{wid}: never cured (batches {w['cure_batches']})")
            if w["etches"] != 1:
                bad.append(f"{wid}: etched {w['etches']} times, not once")
            if not w["vias_open"]:
                bad.append(f"{wid}: vias not open (removed {w['removed_um']} um, "
                           f"residual {w['residual_um']} um)")
    return bad


def assert_world_sound(world: dict[str, Any], wafer_ids: Iterable[str], *,
                       processed: Iterable[str] | None = None,
                       may_stay: Iterable[str] = ()) -> None:
    """Assert :func:`world_problems` finds nothing; the message lists every problem."""
    bad = world_problems(world, wafer_ids, processed=processed, may_stay=may_stay)
    assert not bad, "the simulated world is not sound:\n  " + "\n  ".join(bad)


# ---------------------------------------------------------------- the journal
def _db(path: Path) -> AbstractContextManager[sqlite3.Connection]:
    return connected(f"file:{path}?mode=ro", uri=True, timeout=5.0)


def journal_states(db: Path) -> dict[str, tuple[str, str]]:
    """wafer id → (E90 state, reason) as the journal holds them."""
    with _db(db) as con:
        rows = con.execute("SELECT wafer_id, state, data FROM wafers").fetchall()
    return {w: (st, json.loads(d).get("reason", "")) for w, st, d in rows}


def journal_phase(db: Path, wafer_id: str) -> str | None:
    """The wafer's journaled (step, phase) as "step/phase", or None before it is journaled."""
    if not db.exists():
        return None
    try:
        with _db(db) as con:
            row = con.execute("SELECT data FROM wafers WHERE wafer_id=?", (wafer_id,)).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    data = json.loads(row[0])
    return f"{data.get('step', '')}/{data.get('phase', '')}"


def rewind_phase(db: Path, wafer_id: str, phase: str) -> None:
    """Set the wafer's journaled phase back to ``phase``: the journal as a crash between
    a command's OUTCOME write and its phase write leaves it."""
    with connected(db, timeout=5.0) as con:
        (raw,) = con.execute("SELECT data FROM wafers WHERE wafer_id=?", (wafer_id,)).fetchone()
        data = {**json.loads(raw), "phase": phase}
        con.execute("UPDATE wafers SET data=? WHERE wafer_id=?", (json.dumps(data), wafer_id))


def commands_for(db: Path, wafer_id: str, command: str) -> list[str | None]:
    """The outcomes of every ``command`` journaled for the wafer, in order."""
    with _db(db) as con:
        rows = con.execute("SELECT wafer_ids, outcome FROM commands WHERE command=? "
                           "ORDER BY id", (command,)).fetchall()
    return [o for w, o in rows if wafer_id in json.loads(w)]


def journal_lots(db: Path) -> dict[str, str]:
    with _db(db) as con:
        return dict(con.execute("SELECT lot_id, job_state FROM lots").fetchall())


def job_transitions(db: Path, lot_id: str) -> list[tuple[str, str]]:
    """(src, dst) of every E40 job state change of the lot, in order."""
    with _db(db) as con:
        return [tuple(r) for r in con.execute(
            "SELECT src, dst FROM transitions WHERE kind='job' AND subject=? ORDER BY id",
            (lot_id,)).fetchall()]


def journal_alarms(db: Path) -> list[tuple[str, str, str]]:
    """(tool, kind, text) of every alarm raised."""
    try:
        with _db(db) as con:
            return [tuple(r) for r in con.execute(
                "SELECT tool, kind, text FROM alarms ORDER BY id").fetchall()]
    except sqlite3.OperationalError:
        return []


def open_intents(db: Path) -> list[tuple[str, str, list[str]]]:
    """(tool, command, wafer ids) of the commands journaled without an outcome."""
    if not db.exists():
        return []
    try:
        with _db(db) as con:
            rows = con.execute("SELECT tool, command, wafer_ids FROM commands "
                               "WHERE outcome IS NULL ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema is not written yet
        return []
    return [(t, c, json.loads(w)) for t, c, w in rows]


def assert_accounted(db: Path, wafer_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Every wafer has a final E90 state; every one not PROCESSED says why. Returns them."""
    states = journal_states(db)
    bad = []
    for wid in wafer_ids:
        st, why = states.get(wid, ("MISSING", ""))
        if st not in FINAL:
            bad.append(f"{wid}: {st} (not final)")
        elif st != "PROCESSED" and not why:
            bad.append(f"{wid}: {st} without a reason")
    assert not bad, "journal does not account for every wafer:\n  " + "\n  ".join(bad)
    return states


# ---------------------------------------------------------------- runs
@dataclass
class RunResult:
    code: int
    stdout: str
    stderr: str


class SeqProcess:
    """``viaform run LOTS --config TOOLS --db DB --plain`` as a subprocess (a context manager
    that SIGKILLs it on the way out if it still runs). Output goes to files: no pipe can
    fill up and stall it."""

    def __init__(self, lotfiles: list[Path], tools: Path, db: Path, tag: str) -> None:
        viaform = Path(sys.executable).with_name("viaform")
        cmd = [str(viaform) if viaform.exists() else shutil.which("viaform") or "viaform",
               "run", *map(str, lotfiles), "--config", str(tools), "--db", str(db), "--plain"]
        self.out = db.with_name(f"{tag}.out")
        self.err = db.with_name(f"{tag}.err")
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=REPO, env={**os.environ, "COLUMNS": "200"})

    def __enter__(self) -> SeqProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a power cut or OOM kill would; waits until it is gone."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def result(self, timeout_s: float) -> RunResult:
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"viaform run did not end within {timeout_s} s:\n"
                                 f"{self.err.read_text()[-3000:]}") from None
        return RunResult(code, self.out.read_text(), self.err.read_text())


def run_cli(lotfiles: list[Path], tools: Path, db: Path, tag: str,
            timeout_s: float) -> RunResult:
    """Run ``viaform run`` to its end (bounded)."""
    with SeqProcess(lotfiles, tools, db, tag) as p:
        return p.result(timeout_s)


class InProcessRun:
    """``run_lot_objects`` on its own thread and event loop, so that the test's thread can
    watch the tools and inject faults meanwhile. ``report(timeout)`` joins it."""

    def __init__(self, sims: SimThread, lotfiles: list[Path], db: Path,
                 overrides: dict[str, Any] | None = None,
                 on_event: Callable[[Event], None] | None = None) -> None:
        cfg = tools_config_for(sims.endpoints, sims.clock.time_scale, journal=str(db))
        lots = [load_lot(p) for p in lotfiles]
        self._report: RunReport | None = None
        self._error: BaseException | None = None

        def main() -> None:
            try:
                self._report = asyncio.run(run_lot_objects(lots, cfg, db, overrides=overrides,
                                                           on_event=on_event))
            except BaseException as exc:  # handed to the test's thread
                self._error = exc

        self.thread = threading.Thread(target=main, name="sequencer", daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def report(self, timeout_s: float) -> RunReport:
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise AssertionError(f"the run hung: not finished within {timeout_s} s")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report


def rows_by_wafer(report: RunReport) -> dict[str, tuple[str, str]]:
    return {r.wafer_id: (r.state, r.reason) for r in report.rows}
