"""The run's live display and its end report, fed with the scheduler's events."""

from __future__ import annotations

import io

from sequencer.faces.progress import ProgressDisplay
from sequencer.faces.report import failures, summary_lines
from sequencer.runner.alarms import Event
from sequencer.runner.run_report import RunReport, WaferRow


def _row(wafer: str, state: str, reason: str = "") -> WaferRow:
    return WaferRow("L1", wafer, 318.0, 7.5, 2.0, 1.5, 1, 180, state == "PROCESSED", state, reason)


def test_plain_display_prints_steps_alarms_and_final_states() -> None:
    out = io.StringIO()
    display = ProgressDisplay(stream=out, live=False)
    display.seed(["W1", "W2"])
    with display:
        display.on_event(Event("step_start", 0.0, "L1", "W1", "exposure", "expose"))
        display.on_event(Event("step_end", 155.0, "L1", "W1", "exposure", "expose", {"ok": True}))
        display.on_event(Event("alarm", 200.0, "L1", None, "etcher", None,
                               {"id": 12, "kind": "RF_REFLECTED", "text": "reflected power"}))
        display.on_event(Event("wafer", 300.0, "L1", "W2", None, None,
                               {"src": "IN_PROCESS", "dst": "ABORTED", "reason": "RF fault"}))
    lines = out.getvalue().splitlines()
    assert any("exposure expose W1 ok" in line for line in lines)
    assert any("ALARM    #12 etcher: RF_REFLECTED: reflected power" in line for line in lines)
    assert any("wafer    W2 ABORTED: RF fault" in line for line in lines)
    assert display.state.wafers == {"W1": "exposed", "W2": "ABORTED"}


def test_failures_name_every_lot_and_wafer_that_did_not_complete() -> None:
    report = RunReport(
        rows=[_row("W1", "PROCESSED"), _row("W2", "STOPPED", "held: queue time 24 h exceeded")],
        jobs={"L1": "STOPPED"}, busy_s={}, utilisation={"oven": 0.5}, makespan_s=3600,
        makespan_wall_s=9.0, batches=[(1, ["W1", "W2"])],
    )
    assert failures(report) == ["lot L1 ended STOPPED",
                                "W2 STOPPED: held: queue time 24 h exceeded"]
    summary = "\n".join(summary_lines(report))
    assert "2 in, 1 out (processed), 0 rejected, 1 held" in summary
    assert "oven 50%" in summary and "1.00 h simulated" in summary
