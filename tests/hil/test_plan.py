"""The planner against the runner, on the simulators over their real transports.

One policy, two clocks: the planner (``sequencer.runner.planner``) runs the policy on
a virtual clock with the manuals' timings; the runner runs it against the tools. Given
the same line and lots they must make the same decisions in the same order (which
wafers each exposure, batch and etch takes, in turn), and the predicted makespan must
be close to the run's (within ``TOLERANCE``, the issue's 2 %).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sequencer.line.simhost import tools_config_for
from sequencer.process.lots import load_lot
from sequencer.runner.planner import plan
from sequencer.runner.policy import Decision
from sequencer.runner.steps import SequencerConfig
from simulators.runner import SimThread

from .flowkit import InProcessRun, assert_world_sound, world_snapshot, write_lot, write_recipe

SCALE = 800.0  # the planner models the sequencer's own time a step at any scale
TOLERANCE = 0.02  # the issue's
LINES = {"1-1-1": {"exposure": "exposure", "oven": "oven", "etcher": "etcher"},
         "1-1-2": {"exposure": "exposure", "oven": "oven", "etcher": "etcher",
                   "etcher-2": "etcher"}}


def _quick_lots(tmp_path: Path) -> list[Path]:
    """Two lots of 5 of FLOW-P: FLOW-A with a batch of 5 and a shorter cure (~1.7 h)."""
    write_lot(tmp_path, "P0", "FLOW-A", ["Z01"])  # copies the recipes
    write_recipe(tmp_path, "cure", {
        "name": "CURE-P", "batch_size": 5, "o2_limit_ppm": 20,
        "segments": [{"ramp_c_per_min": 10.0, "target_c": 150.0, "hold_min": 10},
                     {"ramp_c_per_min": 5.0, "target_c": 300.0, "hold_min": 30}],
        "unload_c": 150.0, "high_limit_c": None, "n2_flow_slm": 50.0, "shrink_fraction": 0.25})
    write_recipe(tmp_path, "flow", {
        "name": "FLOW-P", "variant": "A",
        "steps": [{"process": "exposure", "recipe": "EXP-CONCAVE-01"},
                  {"process": "cure", "recipe": "CURE-P"},
                  {"process": "etch", "recipe": "ETCH-OPEN-01"}]})
    return [write_lot(tmp_path, lot, "FLOW-P", [f"{lot}W{i}" for i in range(1, 6)])
            for lot in ("P1", "P2")]


def _sequence(decisions: list[Decision]) -> dict[str, list[tuple[str, ...]]]:
    """Per step, the wafers each decision took, in order (which etcher took which wafer
    is the first free one's: the order of the wafers is the policy's)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for d in sorted(decisions, key=lambda d: d.t):
        out.setdefault(d.step, []).append(d.wafer_ids)
    return out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("shape", sorted(LINES))
def test_the_planner_and_the_runner_make_the_same_decisions(tmp_path: Path,
                                                            shape: str) -> None:
    lotfiles = _quick_lots(tmp_path)
    lots = [load_lot(p) for p in lotfiles]
    with SimThread(time_scale=SCALE, seed=31, line=LINES[shape]) as sims:
        db = tmp_path / "journal.db"
        cfg = tools_config_for(sims.endpoints, SCALE, journal=str(db))
        predicted = plan(lots, cfg.kinds, SequencerConfig.from_tools(cfg))
        report = InProcessRun(sims, lotfiles, db).report(160)
        world = world_snapshot(sims)
    wafers = [w for lot in lots for w in lot.wafer_ids]
    assert all(r.state == "PROCESSED" for r in report.rows), report.rows
    assert_world_sound(world, wafers)
    assert _sequence(report.decisions) == _sequence(predicted.decisions)
    if shape == "1-1-2":  # both etchers took work, in the plan and in the run
        assert {d.tool for d in report.decisions if d.step == "etch"} == {"etcher", "etcher-2"}
    error = abs(predicted.makespan_s - report.makespan_s) / report.makespan_s
    print(f"{shape}: predicted {predicted.makespan_s:.0f} s, ran {report.makespan_s:.0f} s, "
          f"error {error:.2%}")
    # The 2 %: at time scale 800, 0.08-0.30 % (1-1-1) and 0.92-1.05 % (1-1-2) in
    # three runs (0.42 and 0.68 % at 400, twice as long a test); the cure is modelled from
    # the chamber's own start (a hot oven's next batch ramps from what it cooled to during
    # the purge).
    assert error <= TOLERANCE, (predicted.makespan_s, report.makespan_s)


@pytest.mark.timeout(90)
def test_the_daemon_gives_each_lot_an_eta_from_the_planner(tmp_path: Path) -> None:
    """A lot submitted to the daemon gets an ETA from the planner (made from the line's
    state, remade as it runs); the lot ends near it; `viaform plan --daemon` prints the
    daemon's plan of the lot in progress."""
    import json
    import os
    import subprocess
    import sys
    import time

    import httpx

    from sequencer.faces.http.app import create_app
    from sequencer.faces.http.engine_line import EngineLine
    from sequencer.faces.http.server import ServerThread
    from sequencer.store.audit import AuditLog

    from .flowkit import REPO, wait_for
    from .test_daemon_engine import AUTH, TOKENS, lot_body

    _quick_lots(tmp_path)
    scale = 3000.0
    with SimThread(time_scale=scale, seed=32) as sims:
        db = tmp_path / "journal.db"
        cfg = tools_config_for(sims.endpoints, scale, journal=str(db))
        line = EngineLine(cfg, db, recipes_dir=tmp_path / "recipes", status_poll_wall_s=0.05)
        audit = AuditLog(db)
        with ServerThread(create_app(line, AUTH, audit, recipes_dir=tmp_path / "recipes")) as srv, \
                httpx.Client(base_url=srv.url, timeout=10.0, headers={
                    "Authorization": f"Bearer {TOKENS['operator']}"}) as c:
            wafers = [f"E{i:02d}" for i in range(1, 6)]
            assert c.post("/lots", json=lot_body("LE", wafers, "FLOW-P")).status_code == 201
            eta = wait_for(lambda: c.get("/lots/LE").json()["eta"], 20, "an ETA for LE",
                           interval_s=0.05)
            assert eta > time.time()
            exe = Path(sys.executable).with_name("viaform")
            shown = subprocess.run([str(exe), "plan", "--daemon", srv.url, "--json"],
                                   capture_output=True, text=True, cwd=REPO, timeout=30,
                                   env={**os.environ, "VIAFORM_TOKEN": TOKENS["operator"]})
            assert shown.returncode == 0, shown.stderr
            planned = json.loads(shown.stdout)
            assert "LE" in planned["lots"] and {s["wafer_id"] for s in planned["steps"]} \
                <= set(wafers)
            wait_for(lambda: c.get("/lots/LE").json()["state"] == "PROCESS_COMPLETE", 60,
                     "LE complete", interval_s=0.05)
            ended = time.time()
        audit.close()
    # the first ETA, made before most of the lot ran, against its end (wall s)
    assert abs(ended - eta) <= 0.1 * (ended - (eta - planned["makespan_s"] / scale)) + 2.0
