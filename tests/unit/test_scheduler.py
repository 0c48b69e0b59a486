"""The scheduler with fake tools: a lot through all steps, batching, overlap, tool down."""

from __future__ import annotations

import asyncio

import pytest

from sequencer.runner.alarms import Event
from sequencer.runner.run_report import RunReport
from sequencer.runner.scheduler import run_lots
from sequencer.store.journal import Journal
from tests.unit.seq_fakes import Line, fast_config, flow, line, lot

pytestmark = pytest.mark.timeout(30)


def run(ln: Line, lots: list, tmp_path, events: list | None = None, **cfg) -> RunReport:
    journal = Journal(":memory:", now=ln.clock.now)  # no fsync: the fakes run 5000× fast
    sink = events.append if events is not None else None
    try:
        return asyncio.run(run_lots(lots, ln.tools, ln.handling, journal, ln.clock,
                                    fast_config(**cfg), on_event=sink))
    finally:
        journal.close()


def test_one_lot_goes_through_every_step_in_order(tmp_path) -> None:
    ln = line()
    events: list[Event] = []
    rep = run(ln, [lot("L1", 3, flow(batch_size=25))], tmp_path, events)
    assert [r.state for r in rep.rows] == ["PROCESSED"] * 3
    assert rep.jobs == {"L1": "PROCESS_COMPLETE"}
    row = rep.rows[0]
    assert row.dose == 318.0 and row.residual_um == 2.0
    assert row.residual_after_cure_um == pytest.approx(1.5)
    assert row.etch_time_s == 180  # 1.5 um at 500 nm/min
    assert row.open is True and row.cure_batch == 1
    # each wafer: exposure → stocker → oven (all three together) → stocker → etcher → stocker
    w1 = [to for _, ids, to in ln.handling.moves if "L1-01" in ids]
    assert w1 == ["exposure", "stocker", "oven", "stocker", "etcher", "stocker"]
    assert ln.oven.starts == [1]  # no more wafers could come: a partial batch of 3
    assert ln.etcher.etched == ["L1-01", "L1-02", "L1-03"]
    assert ln.etcher.recipe["etch_time"] == 180 and ln.etcher.recipe["overetch"] == 30
    assert ln.exposure.settings == {"dose": 318.0, "focus": 0.0, "develop_time": 90,
                                    "reticle": "VIA-200"}
    kinds = {e.kind for e in events}
    assert {"wafer", "job", "step_start", "step_end", "batch"} <= kinds
    assert 0 < rep.utilisation["oven"] <= 1.0 and rep.makespan_s > 1500


def test_batch_fills_to_batch_size_then_rest_goes_as_partial(tmp_path) -> None:
    ln = line()
    rep = run(ln, [lot("L1", 5, flow(batch_size=2))], tmp_path)
    assert [r.state for r in rep.rows] == ["PROCESSED"] * 5
    assert [len(ws) for _, ws in rep.batches] == [2, 2, 1]
    assert ln.oven.starts == [1, 2, 3]


def test_partial_batch_under_queue_time_pressure(tmp_path) -> None:
    """Batch size 25, but waiting for a full batch would break the first wafer's 1000 s
    develop→cure limit: the oven starts a partial batch in time, and the exposure cell
    does not develop wafers that could not be cured in time."""
    ln = line(cure_s=2000.0)
    rep = run(ln, [lot("L1", 9, flow(batch_size=25))], tmp_path,
              q_develop_cure_s=1000.0, expose_cycle_s=165.0, margin_s=150.0)
    assert all(r.state == "PROCESSED" for r in rep.rows), rep.rows
    sizes = [len(ws) for _, ws in rep.batches]
    assert len(sizes) >= 2 and sum(sizes) == 9 and 3 <= sizes[0] < 9


def test_two_lots_overlap_and_oven_never_waits(tmp_path) -> None:
    ln = line(cure_s=3000.0)
    rep = run(ln, [lot("L1", 4, flow(batch_size=4)), lot("L2", 4, flow(batch_size=4))],
              tmp_path)
    assert all(r.state == "PROCESSED" for r in rep.rows)
    assert [ws for _, ws in rep.batches] == [[f"L1-0{i}" for i in range(1, 5)],
                                             [f"L2-0{i}" for i in range(1, 5)]]
    starts = [t for t, ids, to in ln.handling.moves if to == "oven"]
    outs = [t for t, ids, to in ln.handling.moves if to == "stocker" and len(ids) == 4]
    # the second batch goes in right after the first comes out (L2 exposed during L1's cure)
    assert starts[1] - outs[0] < 200.0
    # L1's etch ran while L2 cured, and L2 was exposed while L1 cured
    l1_etch = [t for t, ids, to in ln.handling.moves if to == "etcher" and ids[0] == "L1-01"]
    l2_exp = [t for t, ids, to in ln.handling.moves if to == "exposure" and ids[0][:2] == "L2"]
    assert starts[1] < l1_etch[0] < outs[1]
    assert starts[0] < l2_exp[-1] < outs[0]
    # makespan ≈ first lot's exposure + 2 × cure + last lot's etch (+ handling slack)
    ideal = 4 * 165 + 2 * 3000 + 4 * 330
    assert rep.makespan_s < ideal * 1.25


def test_queue_time_breach_before_etch_holds_the_wafer(tmp_path) -> None:
    ln = line()
    rep = run(ln, [lot("L1", 2, flow(batch_size=2))], tmp_path, q_cure_etch_s=200.0)
    # the second wafer waits ~330 s for the etcher after cure: past 200 s
    states = {r.wafer_id: (r.state, r.reason) for r in rep.rows}
    assert states["L1-01"][0] == "PROCESSED"
    assert states["L1-02"][0] == "STOPPED" and "cure→etch queue time" in states["L1-02"][1]
    assert ln.etcher.etched == ["L1-01"]


def test_a_dead_lamp_holds_the_exposure_cell_and_its_work_waits_for_a_person(tmp_path) -> None:
    """The lamp fails mid-exposure and stays dead: the wafer is ABORTED, the cell is held
    (no wafer loaded, nothing cleared) until a person acknowledges; the lamp repaired and
    the alarm acknowledged, the lot's other wafers go on."""
    import time

    from sequencer.runner.scheduler import Scheduler
    from sequencer.store.history import record_ack

    ln = line()
    ln.exposure.alarm_in["EXPOSING"] = "LAMP_FAIL"
    ln.exposure.sticky_alarm = True  # the lamp stays dead: ALARM never clears
    journal = Journal(":memory:", now=ln.clock.now)
    sched = Scheduler([lot("L1", 3, flow(batch_size=3))], ln.tools, ln.handling, journal,
                      ln.clock, fast_config())

    async def main():
        task = asyncio.create_task(sched.run())
        while "exposure" not in sched.holds.held:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert ln.exposure.calls.count("load") == 1 and "clear_alarms" not in ln.exposure.calls
        assert [w.state for w in sched.wafers[1:]] == ["NEEDS_PROCESSING"] * 2
        ln.exposure.sticky_alarm = False  # the lamp is replaced
        alarm_id = sched.holds.held["exposure"].alarm_id
        record_ack(journal.db, alarm_id, time.time(), "tech")
        journal.clear_alarm(alarm_id)
        return await task

    rep = asyncio.run(main())
    states = {r.wafer_id: (r.state, r.reason) for r in rep.rows}
    assert states["L1-01"][0] == "ABORTED" and "LAMP_FAIL" in states["L1-01"][1]
    assert states["L1-02"][0] == states["L1-03"][0] == "PROCESSED"
    assert ln.exposure.calls.count("clear_alarms") == 1
    assert ln.oven.starts == [1]
