"""Held wafers' disposition without a daemon: `viaform wafer release|scrap` on the journal.

The journal holds a lot as a run leaves it (one wafer held after a cure excursion, one
held before anything was done, one held mid-route to be scrapped, one PROCESSED). The
CLI changes the journal file (all or nothing, audited); the next run of the lot (on the
tool fakes) then does what the disposition says — checked on the fakes' own job counts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.faces.cli import app
from sequencer.runner.scheduler import run_lots
from sequencer.states.substrate import Substrate, dispose, disposition_refusal, held_from
from sequencer.store.journal import Journal
from tests.sqlitekit import connected
from tests.unit.seq_fakes import fast_config, flow, line, lot

pytestmark = pytest.mark.timeout(30)

EXCURSION = "cure excursion: O2 30072 ppm (limit 20) for 21 min at 318 °C"


def _held_journal(path: Path, clock_now: float) -> None:
    """L1-01 cured with an excursion, held; L1-02 held before starting; L1-03 held after
    develop; L1-04 PROCESSED. The lot's job is PROCESS_COMPLETE (every wafer final)."""
    j = Journal(path, now=lambda: clock_now)
    j.add_lot("L1", "FLOW-T", [(i, f"L1-{i:02d}") for i in range(1, 5)], {"variant": "A"})
    base = {"location": "stocker", "developed": True, "develop_end": clock_now,
            "residual_um": 2.0, "dose": 318.0}
    rows = {
        "L1-01": ("IN_PROCESS", {**base, "cured": True, "cure_end": clock_now,
                                 "residual_after_cure_um": 1.5, "cure_batch": 1,
                                 "cure_excursion": EXCURSION}, f"held for disposition: "
                                                               f"{EXCURSION}"),
        "L1-02": ("NEEDS_PROCESSING", {}, "held for disposition: exposure down"),
        "L1-03": ("IN_PROCESS", base, "held for disposition: oven down"),
    }
    for wid, (src, data, why) in rows.items():
        if src == "IN_PROCESS":
            j.wafer_transition(wid, "NEEDS_PROCESSING", "IN_PROCESS", "", data)
        j.wafer_transition(wid, src, "STOPPED", why, {**data, "reason": why})
    j.wafer_transition("L1-04", "IN_PROCESS", "PROCESSED", "",
                       {**base, "cured": True, "etched": True})
    j.set_lot_state("L1", "QUEUED", "PROCESS_COMPLETE")
    j.close()


def _states(path: Path) -> dict[str, tuple[str, dict]]:
    with connected(path) as con:
        return {w: (st, json.loads(d)) for w, st, d in
                con.execute("SELECT wafer_id, state, data FROM wafers")}


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["wafer", *args, "--daemon", "none"])
    return res.exit_code, res.output


def test_substrate_disposition_transitions_and_refusals() -> None:
    w = Substrate("W1", "L", 1)
    assert disposition_refusal(w, "release") and "not held" in disposition_refusal(w, "scrap")
    w.start()
    w.hold(reason="held for disposition: x")
    w.data.location = "etcher"
    assert "move it out first" in str(disposition_refusal(w, "release"))
    assert disposition_refusal(w, "scrap") is None  # scrapping a wafer left on a tool is fine
    w.data.location, w.data.step, w.data.phase = "stocker", "etch", "start"
    dispose(w, "release", "looked fine", "bob", held_from([("IN_PROCESS", "STOPPED", "x")]))
    assert w.state == "IN_PROCESS" and w.data.reason == "released by bob: looked fine"
    assert (w.data.step, w.data.phase) == ("", "")  # the abandoned step is not resumed blind
    fresh = Substrate("W2", "L", 2)
    fresh.hold(reason="held")
    dispose(fresh, "release", "ok", "bob", held_from([("NEEDS_PROCESSING", "STOPPED", "")]))
    assert fresh.state == "NEEDS_PROCESSING"
    fresh.hold(reason="held")
    dispose(fresh, "scrap", "cracked", "eve", "NEEDS_PROCESSING")
    assert fresh.state == "REJECTED" and fresh.data.reason == "scrapped by eve: cracked"


def test_release_and_scrap_on_the_journal_then_the_next_run_resumes(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    ln = line()
    _held_journal(db, ln.clock.now())
    before = _states(db)

    # a non-held wafer in the list: refused, exit 2, nothing changed for any of them
    code, out = _cli("release", "L1-01", "L1-04", "--reason", "checked", "--db", str(db))
    assert code == 2 and "L1-04 is PROCESSED, not held" in out, out
    code, out = _cli("scrap", "L1-09", "--reason", "x", "--db", str(db))
    assert code == 2 and "no wafer 'L1-09'" in out, out
    assert _states(db) == before

    code, out = _cli("release", "L1-01", "L1-02", "--reason", "O2 excursion reviewed: ok",
                     "--db", str(db))
    assert code == 0, out
    assert "released L1-01: IN_PROCESS (next: etch)" in out, out
    assert "released L1-02: NEEDS_PROCESSING (next: expose+develop)" in out, out
    code, out = _cli("scrap", "L1-03", "--reason", "edge chipped", "--db", str(db))
    assert code == 0 and "scrapped L1-03: REJECTED" in out, out
    code, out = _cli("scrap", "L1-03", "--reason", "again", "--db", str(db))
    assert code == 2 and "L1-03 is REJECTED, not held" in out, out

    with connected(db) as con:
        reasons = dict(con.execute("SELECT subject, reason FROM transitions WHERE kind='wafer' "
                                   "AND src='STOPPED'").fetchall())
        audit = con.execute("SELECT who, role, tool, command, args, outcome FROM audit "
                            "ORDER BY id").fetchall()
        job = con.execute("SELECT job_state FROM lots WHERE lot_id='L1'").fetchone()[0]
    assert reasons["L1-01"].startswith("released by ") and \
        reasons["L1-01"].endswith(": O2 excursion reviewed: ok")
    assert reasons["L1-03"].endswith(": edge chipped") and "scrapped by" in reasons["L1-03"]
    assert [(a[3], a[5]) for a in audit] == [("release", "refused"), ("scrap", "refused"),
                                             ("release", "ok"), ("scrap", "ok"),
                                             ("scrap", "refused")]
    assert all(a[2] == "wafer" and a[0] for a in audit)
    assert json.loads(audit[2][4])["reason"] == "O2 excursion reviewed: ok"
    assert job == "QUEUED", "a released wafer re-opens its lot's finished job"

    # the next run of the lot: the excursion wafer goes to etch (not re-cured), the
    # unstarted one through the whole route, the scrapped one nowhere
    journal = Journal(db, now=ln.clock.now)
    report = asyncio.run(run_lots([lot("L1", 4, flow(batch_size=1))], ln.tools, ln.handling,
                                  journal, ln.clock, fast_config()))
    journal.close()
    states = {r.wafer_id: r.state for r in report.rows}
    assert states == {"L1-01": "PROCESSED", "L1-02": "PROCESSED", "L1-03": "REJECTED",
                      "L1-04": "PROCESSED"}, report.rows
    assert ln.etcher.counts.get("L1-01") == 1 and ln.etcher.counts.get("L1-02") == 1
    assert "L1-01" not in ln.exposure.counts and ln.exposure.counts.get("L1-02") == 1
    assert len(ln.oven.starts) == 1  # one batch: L1-02's only
    assert "L1-03" not in ln.etcher.counts and "L1-04" not in ln.etcher.counts
