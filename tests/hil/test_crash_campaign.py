"""A short seeded crash-point campaign (``benchmarks/bench_crash.py``; ``make bench`` runs
≥ 100 points): ``viaform run`` ended by the hidden hook at chosen journal writes, rerun,
and judged from the tools' own job counts and states and the simulated world.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sequencer.store.crashpoint as crashpoint
from benchmarks import bench_crash
from tests.sqlitekit import connected

POINTS = 8
SEED = 11


SCRIPT = """
from sequencer.store.journal import Journal
j = Journal({db!r})
j.add_lot("L1", "FLOW-A", [(1, "W1")])
iid = j.intent("exposure", "LOAD", wafer_ids=["W1"], lot_id="L1")
j.outcome(iid, "OK")
print("ran to the end")
"""


def _journal_script(db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(db=str(db))],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=30, cwd=bench_crash.REPO)


def _rows(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()]


def test_hook_ends_the_process_before_the_nth_write(tmp_path: Path) -> None:
    """A dry run lists every write with its kind; VIAFORM_CRASH_AT at the intent's write
    ends the process with 97 before that write: the lot and wafer are in the journal,
    the intent is not, and nothing after it ran."""
    dry = _journal_script(tmp_path / "dry.db", VIAFORM_CRASH_LOG=str(tmp_path / "dry.tsv"))
    assert dry.returncode == 0 and "ran to the end" in dry.stdout, dry.stderr
    rows = _rows(tmp_path / "dry.tsv")
    kinds = [r[1] for r in rows]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert {"lot", "fate", "intent", "outcome"} <= set(kinds), rows
    n = kinds.index("intent") + 1
    assert rows[n - 1][2:] == ["commands", "exposure LOAD W1"]

    db, log = tmp_path / "j.db", tmp_path / "writes.tsv"
    proc = _journal_script(db, VIAFORM_CRASH_AT=str(n), VIAFORM_CRASH_LOG=str(log))
    assert proc.returncode == crashpoint.CRASH_EXIT_CODE, proc.stderr
    assert "ran to the end" not in proc.stdout
    assert _rows(log) == rows[:n]  # the crashing write is listed, nothing after it
    with connected(db) as con:
        assert con.execute("SELECT count(*) FROM commands").fetchone() == (0,)
        assert con.execute("SELECT wafer_id FROM wafers").fetchall() == [("W1",)]


def test_hook_is_off_without_the_variables() -> None:
    """The test process has neither variable: the journal's only cost is the flag."""
    assert "VIAFORM_CRASH_AT" not in os.environ and "VIAFORM_CRASH_LOG" not in os.environ
    assert crashpoint.ACTIVE is False


@pytest.mark.timeout(300)
def test_seeded_crash_points_hold_the_invariants() -> None:
    """Eight crash points spread over a 2-wafer lot (intents, outcomes, wafer fates, the
    lot's own writes, and the make-safe steps after an rf_reflected etch): every one
    crashes at its write, the rerun ends, and the tools' job counts, states and the
    world hold every invariant."""
    lines: list[str] = []
    total, held = bench_crash.campaign(POINTS, SEED, 3000.0, faults=True, out=lines.append)
    report = "\n".join(lines)
    assert total == POINTS, report
    assert held == total, report
    assert f"{POINTS} crash points, {POINTS} held the invariants" in report
