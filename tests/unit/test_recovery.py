"""A crash at each intent-without-outcome point, then a restart on the same journal:
reconciled with the tool before anything is sent; no double start; nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from sequencer.runner.run_report import RunReport
from sequencer.runner.scheduler import run_lots
from sequencer.store.journal import Journal
from tests.unit.seq_fakes import Crash, Line, fast_config, flow, line, lot

pytestmark = pytest.mark.timeout(30)


def run(ln: Line, path, lots) -> RunReport:
    journal = Journal(path, now=ln.clock.now)
    try:
        return asyncio.run(run_lots(lots, ln.tools, ln.handling, journal, ln.clock,
                                    fast_config()))
    finally:
        journal.close()


def crash_then_restart(tmp_path, tool: str, method: str, when: str, n: int = 2):
    ln = line(cure_s=600.0)
    lots = [lot("L1", n, flow(batch_size=n))]
    getattr(ln, tool).crash[method] = when
    with pytest.raises(Crash):
        run(ln, tmp_path / "j.db", lots)
    j = Journal(tmp_path / "j.db")
    open_ = [(i.tool, i.command) for i in j.open_intents()]
    j.close()
    rep = run(ln, tmp_path / "j.db", lots)
    return ln, rep, open_


POINTS = [
    ("exposure", "load", "LOAD"),
    ("exposure", "start_exposure", "START_EXPOSURE"),
    ("exposure", "start_develop", "START_DEVELOP"),
    ("exposure", "unload", "UNLOAD"),
    ("oven", "start", "START"),
    ("etcher", "load", "LOAD"),
    ("etcher", "start_etch", "START_ETCH"),
    ("etcher", "unload", "UNLOAD"),
]


@pytest.mark.parametrize("when", ["after", "before"])
@pytest.mark.parametrize(("tool", "method", "command"), POINTS)
def test_crash_at_each_intent_point_resumes_without_double_start(tmp_path, tool, method,
                                                                 command, when) -> None:
    ln, rep, open_ = crash_then_restart(tmp_path, tool, method, when)
    assert open_ == [(tool, command)]  # the crash left exactly that intent without outcome
    assert [r.state for r in rep.rows] == ["PROCESSED", "PROCESSED"], rep.rows
    assert ln.exposure.counts == {"L1-01": 1, "L1-02": 1}  # each exposed exactly once
    assert sorted(ln.etcher.etched) == ["L1-01", "L1-02"]  # each etched exactly once
    assert ln.oven.starts == [1]  # one batch, started once
    # the restart decided from the tool: STARTED iff the command had run
    j = Journal(tmp_path / "j.db")
    outcome = [i.outcome for i in j.commands(tool) if i.command == command][0]
    j.close()
    assert outcome == ("STARTED" if when == "after" else "NOT_STARTED")
    assert any(command in note for note in rep.recovery)


def test_reboot_since_the_intent_holds_the_wafer_for_disposition(tmp_path) -> None:
    ln = line(cure_s=600.0)
    lots = [lot("L1", 2, flow(batch_size=2))]
    ln.exposure.crash["start_exposure"] = "after"
    with pytest.raises(Crash):
        run(ln, tmp_path / "j.db", lots)
    ln.exposure.reboot()  # the tool was power-cycled too: job counts reset
    ln.exposure.wafer = None
    rep = run(ln, tmp_path / "j.db", lots)
    states = {r.wafer_id: (r.state, r.reason) for r in rep.rows}
    assert states["L1-01"][0] == "STOPPED" and "rebooted" in states["L1-01"][1]
    assert states["L1-02"][0] == "PROCESSED"
    assert "L1-01" not in ln.exposure.counts  # never re-exposed after the reboot
    assert "L1-01" not in ln.etcher.etched


def test_restart_mid_cure_follows_the_running_batch(tmp_path) -> None:
    """Crash while polling the oven (no open intent): the restart follows batch 1."""
    ln = line(cure_s=600.0)
    lots = [lot("L1", 2, flow(batch_size=2))]
    calls = {"n": 0}
    orig = ln.oven.readings

    def readings_then_crash():
        # the second poll once the batch runs: however few polls a loaded machine makes
        # in the (scaled) 600 s cure, the crash comes while the oven is still curing
        if ln.oven.t0 is not None:
            calls["n"] += 1
        if calls["n"] >= 2:
            ln.oven.readings = orig  # type: ignore[method-assign]
            raise Crash("readings")
        return orig()

    ln.oven.readings = readings_then_crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run(ln, tmp_path / "j.db", lots)
    rep = run(ln, tmp_path / "j.db", lots)
    assert [r.state for r in rep.rows] == ["PROCESSED", "PROCESSED"]
    assert ln.oven.starts == [1] and ln.exposure.counts == {"L1-01": 1, "L1-02": 1}


def test_a_finished_lot_is_not_run_again(tmp_path) -> None:
    ln = line(cure_s=600.0)
    lots = [lot("L1", 1, flow(batch_size=1))]
    run(ln, tmp_path / "j.db", lots)
    rep = run(ln, tmp_path / "j.db", lots)
    assert rep.rows[0].state == "PROCESSED" and rep.jobs == {"L1": "PROCESS_COMPLETE"}
    assert ln.exposure.counts == {"L1-01": 1} and ln.oven.starts == [1]
