"""`viaform wafer plot` and `viaform lot plot` on the journal of a real run on the simulators.

A small flow-A lot runs through `viaform run` (simulators over their real transports); then
the plot commands run as the installed `viaform` console script. The PNGs are checked for
being the figures they should be (their pixel size is the figure's), and the figures drawn
from the same journal are checked on matplotlib's own objects against the tools' truth:
the etcher's own OES:TRACe? of the last etch, the recipe's soak temperatures, the world's
count of exposures, oven batches and etches.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.image import imread

from sequencer.faces.plots.figures import gantt_figure, wafer_figure
from sequencer.faces.plots.schedule import lot_schedule
from sequencer.faces.plots.traces import wafer_traces
from sequencer.process.lots import load_lot
from sequencer.store.history import History
from simulators.runner import SimThread

from .flowkit import run_cli, scpi, world_snapshot, write_lot, write_tools_yaml

SCALE = 1000.0  # the etch poll (and so the O 777.4 trace) is every ~10 tool s
WAFERS = ["P01", "P02", "P03"]
DPI = 110  # sequencer/faces/cli/plot.py saves at this


def _viaform(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("viaform")
    cmd = [str(exe) if exe.exists() else shutil.which("viaform") or "viaform", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("plots")
    lot = write_lot(tmp, "PLOT1", "FLOW-A", WAFERS)
    with SimThread(time_scale=SCALE, seed=5) as sims:
        db = tmp / "journal.db"
        tools = write_tools_yaml(tmp / "tools.yaml", sims, db)
        res = run_cli([lot], tools, db, "run", 75)
        assert res.code == 0, f"{res.stdout}\n{res.stderr}"
        world = world_snapshot(sims)
        last_trace = [float(v) for v in scpi(sims, "etcher", "OES:TRAC?").split(",")]
    return {"tmp": tmp, "db": db, "lot": lot, "world": world, "last_trace": last_trace}


@pytest.mark.timeout(150)
def test_wafer_plot_draws_the_oven_profile_and_both_oes_lines(ran: dict) -> None:
    db, tmp = ran["db"], ran["tmp"]
    last = WAFERS[-1]  # the etcher still holds its trace: the tool's truth to compare
    out = tmp / "wafer.png"
    res = _viaform("wafer", "plot", last, "--out", str(out), "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"wafer {last}: {out}"

    hist = History(db)
    try:
        fig = wafer_figure(wafer_traces(hist, last))
    finally:
        hist.close()
    width, height = fig.get_size_inches()
    png = imread(out)
    assert png.shape[:2] == (round(height * DPI), round(width * DPI))  # this very figure

    temp, n2, o2, etch = fig.axes  # the cure (temperature, N2, its O2 twin), the etch
    assert temp.get_ylabel() == "temperature (°C)" and o2.get_ylabel() == "O2 (ppm)"
    assert n2.get_ylabel() == "N2 flow (slm)"
    lines = {ln.get_gid(): ln for ln in temp.get_lines() if ln.get_gid()}
    recipe = load_lot(ran["lot"]).flow.cure
    soaks = [p for p in temp.patches if p.get_gid() == "soak"]
    assert len(soaks) == len(recipe.segments)
    assert max(lines["setpoint"].get_ydata()) == max(s.target_c for s in recipe.segments)
    pv = lines["pv"].get_ydata()
    assert max(pv) == pytest.approx(max(s.target_c for s in recipe.segments), abs=5)
    assert min(next(ln for ln in n2.get_lines() if ln.get_gid() == "n2").get_ydata()) >= 0

    assert etch.get_xlabel() == "time from RF on (s)"
    oes = {ln.get_gid(): ln for ln in etch.get_lines() if ln.get_gid()}
    assert list(oes["co"].get_ydata()) == pytest.approx(ran["last_trace"])
    o_counts = list(oes["o"].get_ydata())
    assert len(o_counts) >= 10 and min(o_counts) > 0  # OES:O? read while the RF was on
    assert max(oes["o"].get_xdata()) <= len(ran["last_trace"]) * 2.0
    assert "main_end" in oes or "endpoint" in oes


@pytest.mark.timeout(150)
def test_lot_plot_draws_a_row_per_tool_and_a_bar_per_step_or_batch(ran: dict) -> None:
    db, tmp, world = ran["db"], ran["tmp"], ran["world"]
    out = tmp / "gantt.png"
    res = _viaform("lot", "plot", "PLOT1", "--out", str(out), "--db", str(db))
    assert res.returncode == 0, res.stderr
    hist = History(db)
    try:
        sched = lot_schedule(hist, "PLOT1")
    finally:
        hist.close()
    fig = gantt_figure(sched)
    width, height = fig.get_size_inches()
    assert imread(out).shape[:2] == (round(height * DPI), round(width * DPI))
    (ax,) = fig.axes
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["exposure", "oven", "etcher"]
    bars = [c.get_label() for c in ax.collections
            if isinstance(c, PolyCollection) and c.get_gid() == "bar"]
    wafers = world["wafers"]
    exposures = sum(wafers[w]["exposures"] for w in WAFERS)
    batches = {b for w in WAFERS for b in wafers[w]["cure_batches"]}
    etches = sum(wafers[w]["etches"] for w in WAFERS)
    assert sum(b.startswith("exposure:") for b in bars) == exposures == len(WAFERS)
    assert sorted(b for b in bars if b.startswith("oven:")) == \
        sorted(f"oven: batch {n}" for n in batches)
    assert sum(b.startswith("etcher:") for b in bars) == etches == len(WAFERS)
    # in tool time: the oven bar spans at least the cure's soaks (hours, not wall seconds)
    oven = next(b for b in sched.bars if b.tool == "oven")
    assert ax.get_xlabel().endswith("(h)") and oven.end_s - oven.start_s > 3600


@pytest.mark.timeout(120)
def test_bad_input_is_one_line_and_exit_2(ran: dict) -> None:
    db, tmp = ran["db"], ran["tmp"]
    cases = [
        (("wafer", "plot", "NOPE", "--out", str(tmp / "x.png"), "--db", str(db)), "'NOPE'"),
        (("wafer", "plot", WAFERS[0], "--out", str(tmp / "no" / "x.png"), "--db", str(db)),
         "no directory"),
        (("wafer", "plot", WAFERS[0], "--db", str(tmp / "missing.db")), "no journal at"),
        (("lot", "plot", "NOLOT", "--out", str(tmp / "y.png"), "--db", str(db)), "'NOLOT'"),
        (("lot", "plot", "PLOT1", "--out", str(tmp / "y.txt"), "--db", str(db)),
         "must end in"),
    ]
    for args, words in cases:
        res = _viaform(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and words in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert not (tmp / "x.png").exists() and not (tmp / "y.png").exists()
