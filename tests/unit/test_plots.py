"""The trace plots and the Gantt chart, checked on matplotlib's own objects.

A journal file is written with the store's own Journal (as the runner writes it), read
back read-only (History) as the plot commands and the screen do, and drawn: the tests
look at the axes' labels, the lines' data, the shaded bands, the twin axis and the markers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from sequencer.faces.plots.figures import cure_figure, etch_figure, gantt_figure, wafer_figure
from sequencer.faces.plots.schedule import UnknownLot, lot_schedule
from sequencer.faces.plots.traces import UnknownWafer, wafer_traces
from sequencer.runner.steps.cure_watch import PROFILE_COLUMNS
from sequencer.store.history import History
from sequencer.store.journal import Journal

SCALE = 100.0  # tool seconds per wall second, as the journal's clock would run


class Clock:
    """Tool seconds, advanced by the test."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _profile() -> list[list[object]]:
    rows: list[list[object]] = [list(PROFILE_COLUMNS)]
    # t, chamber, wafer, setpoint, o2, n2, alarms, state, segment, phase
    for t in range(0, 600, 60):  # purge
        rows.append([float(t), 25.0, 25.0, 0.0, 65535 - t * 100, 50.0, [], "PURGING", None,
                     "NONE"])
    for i, t in enumerate(range(600, 1200, 60)):  # ramp to 150
        rows.append([float(t), 25.0 + i * 12.5, 24.0 + i * 12, 25.0 + i * 12.5, 8, 50.0, [],
                     "RUNNING", 0, "RAMP"])
    for t in range(1200, 1800, 60):  # soak 1 at 150
        rows.append([float(t), 150.0, 149.0, 150.0, 8, 50.0, [], "RUNNING", 0, "SOAK"])
    for t in range(1800, 2400, 60):  # soak 2 at 320, N2 sags, the oven says N2_FLOW_LOW
        low = t >= 2040
        rows.append([float(t), 320.0, 318.0, 320.0, 9, 20.0 if low else 50.0,
                     ["N2_FLOW_LOW"] if low else [], "RUNNING", 1, "SOAK"])
    return rows


@pytest.fixture()
def history(tmp_path: Path) -> History:
    clock = Clock()
    path = tmp_path / "journal.db"
    j = Journal(path, now=clock)
    j.add_lot("L1", "flow-a", [(1, "W01"), (2, "W02")])
    for wid in ("W01", "W02"):
        step_id = j.intent("handling", "MOVE", wafer_ids=[wid], args={"to": "exposure"})
        j.outcome(step_id, "OK")
        clock.t += 10
        j.outcome(j.intent("exposure", "LOAD", wafer_ids=[wid]), "OK")
        clock.t += 120
        j.outcome(j.intent("exposure", "UNLOAD", wafer_ids=[wid]), "OK")
        clock.t += 15
        j.outcome(j.intent("handling", "MOVE", wafer_ids=[wid], args={"to": "stocker"}), "OK")
    both = ["W01", "W02"]
    j.outcome(j.intent("handling", "MOVE", wafer_ids=both, args={"to": "oven"}), "OK")
    j.outcome(j.intent("oven", "START", wafer_ids=both, before={"batch_no": 7}), "OK")
    clock.t += 2400
    j.trace("batch-7", "oven_profile", _profile())
    j.trace("batch-7", "cure_watch", {"o2_limit_ppm": 20, "n2_flow_slm": 50.0, "excursions": [
        {"t_s": 2100.0, "kind": "N2", "text": "N2 flow 20.0 slm (setpoint 50)"}]})
    j.outcome(j.intent("handling", "MOVE", wafer_ids=both, args={"to": "stocker"}), "OK")
    j.outcome(j.intent("handling", "MOVE", wafer_ids=["W01"], args={"to": "etcher"}), "OK")
    j.outcome(j.intent("etcher", "START_ETCH", wafer_ids=["W01"]), "REFUSED")
    clock.t += 200
    j.outcome(j.intent("handling", "MOVE", wafer_ids=["W01"], args={"to": "stocker"}), "OK")
    for wid in both:
        j.save_wafer(wid, "PROCESSED", {"cure_batch": 7, "location": "stocker"})
    j.result("W01", "etch", {"endpoint_s": 88.0, "elapsed_s": 120.0, "etch_time": 150,
                             "endpoint": True, "overetch": 30})
    j.trace("W01", "oes_co", [1000.0 - 5 * k for k in range(61)])
    j.trace("W01", "oes_o", [[float(t), 400.0 + t] for t in range(0, 121, 3)])
    j.close()
    hist = History(path, SCALE)
    yield hist
    hist.close()


def _lines(ax: object) -> dict[str, Line2D]:
    return {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}  # type: ignore[attr-defined]


def test_cure_figure_draws_profile_o2_twin_n2_soaks_and_excursions(history: History) -> None:
    trace = wafer_traces(history, "W02").cure
    assert trace is not None and trace.batch_no == 7
    fig = cure_figure(trace)
    temp, n2, o2 = fig.axes  # the twin axis is added last
    assert temp.get_ylabel() == "temperature (°C)"
    assert o2.get_ylabel() == "O2 (ppm)" and o2.get_yscale() == "symlog"
    assert o2.get_shared_x_axes().joined(o2, temp)  # a twin: one time axis
    assert n2.get_ylabel() == "N2 flow (slm)"
    assert n2.get_xlabel() == "time from program start (min)"
    lines = _lines(temp)
    pv = lines["pv"]
    assert list(pv.get_xdata())[:2] == [0.0, 1.0]  # minutes
    assert max(pv.get_ydata()) == 320.0
    assert list(lines["setpoint"].get_ydata())[-1] == 320.0
    assert list(lines["wafer"].get_ydata())[-1] == 318.0
    assert list(_lines(o2)["o2"].get_ydata())[0] == 65535
    assert _lines(o2)["o2_limit"].get_ydata()[0] == 20
    assert min(_lines(n2)["n2"].get_ydata()) == 20.0
    soaks = [p for p in temp.patches if p.get_gid() == "soak"]
    assert all(isinstance(p, Rectangle) for p in soaks)
    spans = sorted((p.get_x(), p.get_x() + p.get_width()) for p in soaks)  # type: ignore[attr-defined]
    assert spans == [(20.0, 29.0), (30.0, 39.0)]
    marks = sorted(ln.get_xdata()[0] for ln in temp.get_lines() if ln.get_gid() == "excursion")
    assert marks == [34.0, 35.0]  # the oven's N2_FLOW_LOW at 34 min, the watch's N2 at 35
    labels = [t.get_text() for t in temp.texts if t.get_gid() == "excursion_label"]
    assert sorted(labels) == ["N2", "N2_FLOW_LOW"]
    legend = [t.get_text() for t in temp.get_legend().get_texts()]
    assert {"chamber PV", "setpoint", "wafer", "O2", "soak", "excursion"} <= set(legend)


def test_etch_figure_draws_both_oes_lines_and_the_endpoint(history: History) -> None:
    trace = wafer_traces(history, "W01").etch
    assert trace is not None
    fig = etch_figure(trace)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "time from RF on (s)"
    assert ax.get_ylabel() == "emission (counts)"
    lines = _lines(ax)
    co, o = lines["co"], lines["o"]
    assert list(co.get_xdata())[:3] == [0.0, 2.0, 4.0]  # the tool's 2 s trace step
    assert list(co.get_ydata())[:2] == [1000.0, 995.0]
    assert list(o.get_xdata())[-1] == 120.0 and list(o.get_ydata())[-1] == 520.0
    assert list(lines["endpoint"].get_xdata()) == [88.0, 88.0]
    assert "main_end" not in lines  # with endpoint on, the main etch ended at the endpoint
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["CO 483.5 nm", "O 777.4 nm", "endpoint 88 s"]


def test_a_wafer_without_an_etch_has_no_etch_trace(history: History) -> None:
    traces = wafer_traces(history, "W02")
    assert traces.etch is None and traces.cure is not None


def test_unknown_wafer_and_lot_are_named(history: History) -> None:
    with pytest.raises(UnknownWafer, match="'W99'"):
        wafer_traces(history, "W99")
    with pytest.raises(UnknownLot, match="'L9'"):
        lot_schedule(history, "L9")


def test_gantt_has_a_row_per_tool_and_a_bar_per_step_or_batch(history: History) -> None:
    sched = lot_schedule(history, "L1")
    assert sched.tools == ["exposure", "oven", "etcher"]  # as the journal names them
    fig = gantt_figure(sched)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["exposure", "oven", "etcher"]
    assert ax.get_xlabel() == "tool time from the lot's first command (min)"
    bars = [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_gid() == "bar"]
    assert [b.get_label() for b in bars] == [
        "exposure: W01", "exposure: W02", "oven: batch 7", "etcher: W01"]
    # W01's stay on the exposure tool: from the move in (0) to the move out (145 s)
    x = bars[0].get_paths()[0].vertices[:, 0]
    assert (min(x), max(x)) == pytest.approx((0.0, 145 / 60))
    # the oven batch: 2400 s of tool time
    x = bars[2].get_paths()[0].vertices[:, 0]
    assert max(x) - min(x) == pytest.approx(2400 / 60)
    # the refused etch start: hatched
    assert bars[3].get_hatch() == "//" and bars[0].get_hatch() is None
    assert not any(isinstance(p, Rectangle) and p.get_gid() == "bar" for p in ax.patches)


def test_wafer_figure_holds_what_the_journal_has(history: History) -> None:
    both = wafer_figure(wafer_traces(history, "W01"))
    assert [ax.get_ylabel() for ax in both.axes] == [
        "temperature (°C)", "N2 flow (slm)", "O2 (ppm)", "emission (counts)"]
    assert both.get_suptitle() == "Wafer W01 (lot L1, PROCESSED)"
    cure_only = wafer_figure(wafer_traces(history, "W02"))
    assert [ax.get_ylabel() for ax in cure_only.axes] == [
        "temperature (°C)", "N2 flow (slm)", "O2 (ppm)"]
    assert cure_only.get_size_inches()[1] < both.get_size_inches()[1]


def test_a_wafer_with_no_trace_has_no_figure(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.add_lot("L2", "flow-a", [(1, "N01")])
    j.close()
    hist = History(tmp_path / "j.db")
    try:
        with pytest.raises(ValueError, match="N01 has no traces yet"):
            wafer_figure(wafer_traces(hist, "N01"))
    finally:
        hist.close()
