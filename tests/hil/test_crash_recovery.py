"""Crash recovery: `viaform run` killed with SIGKILL mid-step, then run again.

The simulators (owned by the test) keep running while the sequencer is dead, as real
tools would. The rerun reconciles its journal with the tools and finishes the lot; the
simulated world then shows no wafer exposed or etched twice, none etched before its
cure, none lost. A wafer whose fate cannot be known is held for disposition, with the
reason, and never run again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from simulators.runner import SimThread

from .flowkit import (
    SeqProcess,
    assert_accounted,
    assert_world_sound,
    commands_for,
    has_event,
    journal_lots,
    journal_phase,
    open_intents,
    rewind_phase,
    run_cli,
    tool_state,
    wait_for,
    world_snapshot,
    write_lot,
    write_recipe,
    write_tools_yaml,
)

SCALE = 3000.0
RUN_TIMEOUT_S = 60.0
WAFERS = ["K01", "K02", "K03"]

KillPoint = Callable[[SimThread, Path], bool]


def mid_exposure(sims: SimThread, db: Path) -> bool:
    """K02 on the chuck, exposing (shutter open, fields being stepped), its start journaled."""
    return (tool_state(sims, "exposure") == "EXPOSING" and sims.tools["exposure"].chuck == "K02"
            and journal_phase(db, "K02") == "expose/start_exposure")


def mid_cure(sims: SimThread, db: Path) -> bool:
    """The oven running the cure's second (320 °C) segment."""
    return tool_state(sims, "oven") == "RUNNING" and sims.tools["oven"].segment == 1


def _etching(sims: SimThread, db: Path, wafer_id: str) -> bool:
    etcher = sims.tools["etcher"]
    return (tool_state(sims, "etcher") == "ETCHING" and etcher.wafer is not None
            and etcher.wafer.wafer_id == wafer_id
            and journal_phase(db, wafer_id) == "etch/start_etch")


def mid_etch(sims: SimThread, db: Path) -> bool:
    """K02 in the chamber with RF on (main etch), its start journaled."""
    return _etching(sims, db, "K02")


def _line(tmp_path: Path, sims: SimThread) -> tuple[Path, Path]:
    db = tmp_path / "journal.db"
    return write_tools_yaml(tmp_path / "tools.yaml", sims, db), db


def _kill_at(lots: list[Path], tools: Path, db: Path, point: KillPoint, what: str,
             sims: SimThread, tag: str) -> None:
    with SeqProcess(lots, tools, db, tag) as run:
        wait_for(lambda: point(sims, db) or not run.alive(), RUN_TIMEOUT_S, what)
        assert run.alive(), f"the run ended before {what}:\n{run.result(5).stderr[-2000:]}"
        run.kill()


def _finish(lots: list[Path], tools: Path, db: Path, tag: str) -> str:
    res = run_cli(lots, tools, db, tag, RUN_TIMEOUT_S)
    assert res.code == 0, f"rerun failed ({res.code}):\n{res.stdout}\n{res.stderr}"
    return res.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", [mid_exposure, mid_cure, mid_etch], ids=lambda p: p.__name__)
def test_killed_mid_step_then_rerun(tmp_path: Path, point: KillPoint) -> None:
    lot = write_lot(tmp_path, "CRASH-1", "FLOW-A", WAFERS)
    with SimThread(time_scale=SCALE, seed=5) as sims:
        tools, db = _line(tmp_path, sims)
        _kill_at([lot], tools, db, point, point.__name__, sims, "first")
        out = _finish([lot], tools, db, "rerun")
        world = world_snapshot(sims)
    assert_world_sound(world, WAFERS)
    assert {tuple(world["wafers"][w]["cure_batches"]) for w in WAFERS} == {(1,)}, \
        "the rerun must follow the batch in the oven, not start another"
    assert set(assert_accounted(db, WAFERS).values()) == {("PROCESSED", "")}
    assert journal_lots(db) == {"CRASH-1": "PROCESS_COMPLETE"}
    assert "3 out (processed)" in out
    assert open_intents(db) == []


@pytest.mark.timeout(120)
def test_killed_between_steps(tmp_path: Path) -> None:
    """Oven batches of two: lot 2 is developed and waits in the stocker for the oven
    (between its exposure and its cure) when the sequencer dies."""
    write_lot(tmp_path, "unused", "FLOW-A", ["X"])  # copies the recipes
    write_recipe(tmp_path, "cure", {
        "name": "CURE-PAIR", "batch_size": 2, "o2_limit_ppm": 20,
        "segments": [{"ramp_c_per_min": 5.0, "target_c": 150.0, "hold_min": 30},
                     {"ramp_c_per_min": 3.0, "target_c": 320.0, "hold_min": 60}],
        "unload_c": 100.0, "high_limit_c": None, "n2_flow_slm": 50.0, "shrink_fraction": 0.25})
    write_recipe(tmp_path, "flow", {
        "name": "FLOW-A-PAIR", "variant": "A",
        "steps": [{"process": "exposure", "recipe": "EXP-CONCAVE-01"},
                  {"process": "cure", "recipe": "CURE-PAIR"},
                  {"process": "etch", "recipe": "ETCH-OPEN-01"}]})
    lots = [write_lot(tmp_path, "PAIR-1", "FLOW-A-PAIR", ["P11", "P12"]),
            write_lot(tmp_path, "PAIR-2", "FLOW-A-PAIR", ["P21", "P22"])]
    wafers = ["P11", "P12", "P21", "P22"]

    def lot2_waits(sims: SimThread, db: Path) -> bool:
        return all(has_event(sims, w, "handling", "exposure -> stocker") for w in ("P21", "P22"))

    with SimThread(time_scale=SCALE, seed=6) as sims:
        tools, db = _line(tmp_path, sims)
        _kill_at(lots, tools, db, lot2_waits, "lot 2 developed, waiting for the oven", sims,
                 "first")
        snap = world_snapshot(sims)["wafers"]
        for w in ("P21", "P22"):  # between steps: developed, in the stocker, not in a cure
            assert (snap[w]["location"], snap[w]["developed"], snap[w]["cure_batches"]) == \
                ("stocker", 1, []), w
        _finish(lots, tools, db, "rerun")
        world = world_snapshot(sims)
    assert_world_sound(world, wafers)
    batches = {w: world["wafers"][w]["cure_batches"] for w in wafers}
    assert batches == {"P11": [1], "P12": [1], "P21": [2], "P22": [2]}
    assert set(assert_accounted(db, wafers).values()) == {("PROCESSED", "")}


@pytest.mark.timeout(150)
def test_killed_at_every_step_of_one_lot(tmp_path: Path) -> None:
    """One lot, four deaths: mid-exposure, mid-cure, mid-etch, then mid-etch of the
    next wafer; each rerun picks up where the tools are."""
    lot = write_lot(tmp_path, "CRASH-4", "FLOW-A", WAFERS)

    def mid_etch_k03(sims: SimThread, db: Path) -> bool:
        return _etching(sims, db, "K03")

    with SimThread(time_scale=SCALE, seed=7) as sims:
        tools, db = _line(tmp_path, sims)
        for i, point in enumerate((mid_exposure, mid_cure, mid_etch, mid_etch_k03)):
            _kill_at([lot], tools, db, point, point.__name__, sims, f"run{i}")
        _finish([lot], tools, db, "last")
        world = world_snapshot(sims)
    assert_world_sound(world, WAFERS)
    assert set(assert_accounted(db, WAFERS).values()) == {("PROCESSED", "")}


@pytest.mark.timeout(120)
def test_fate_unknown_is_held_not_rerun(tmp_path: Path) -> None:
    """Killed with EXPOSURE:STARt for K02 journaled but not answered, and the exposure cell
    rebooted meanwhile (a new SYSTem:BOOT? id: its job records cannot be trusted). The
    rerun cannot know whether K02 was exposed: K02 is held with that reason, never
    exposed again. K01, already developed, carries on; K03 cannot use the exposure cell
    while K02 sits on its chuck, so it is held too, with the reason."""
    lot = write_lot(tmp_path, "UNKNOWN-1", "FLOW-A", WAFERS)
    with SimThread(time_scale=SCALE, seed=8) as sims:
        tools, db = _line(tmp_path, sims)

        def k02_start_in_flight(sims: SimThread, db: Path) -> bool:
            # K02 loaded: from here to the start no wait has a deadline, so slow replies
            # (0.5 s wall each) only widen the window in which the start is in flight,
            # wide enough to be caught on a loaded 2-core machine
            if journal_phase(db, "K02") == "expose/loaded" and \
                    not sims.faults["exposure"].is_on("slow"):
                sims.call(sims.faults["exposure"].inject, "slow", delay_s=0.5)
            return ("exposure", "START_EXPOSURE", ["K02"]) in open_intents(db)

        _kill_at([lot], tools, db, k02_start_in_flight, "START_EXPOSURE K02 in flight", sims,
                 "first")
        sims.call(sims.faults["exposure"].clear, "slow")
        sims.call(setattr, sims.tools["exposure"], "boot_id", sims.tools["exposure"].boot_id + 1)
        res = run_cli([lot], tools, db, "rerun", RUN_TIMEOUT_S)
        world = world_snapshot(sims)
    assert res.code == 1, "a run with held wafers must not report success"
    states = assert_accounted(db, WAFERS)
    assert states["K01"] == ("PROCESSED", "")
    assert states["K02"][0] == "STOPPED" and "reboot" in states["K02"][1], states["K02"]
    assert states["K03"][0] == "STOPPED", states["K03"]
    assert_world_sound(world, WAFERS, processed=["K01"], may_stay=["K02"])
    assert world["wafers"]["K03"]["exposures"] == 0
    assert "START_EXPOSURE ['K02']: UNKNOWN" in res.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("point", "command"), [(mid_exposure, "START_EXPOSURE"),
                                                (mid_etch, "START_ETCH")],
                         ids=["exposure", "etch"])
def test_killed_between_start_outcome_and_phase(tmp_path: Path, point: KillPoint,
                                                command: str) -> None:
    """A journal whose start OUTCOME says OK while the wafer's phase is still before the
    start (a SIGKILL once landed between the two writes; they are now one transaction,
    and recovery also repairs such a journal): the rerun must follow the job, never
    send the start again."""
    lot = write_lot(tmp_path, "WINDOW-1", "FLOW-A", WAFERS)
    with SimThread(time_scale=SCALE, seed=9) as sims:
        tools, db = _line(tmp_path, sims)
        _kill_at([lot], tools, db, point, point.__name__, sims, "first")
        rewind_phase(db, "K02", "loaded")
        res = run_cli([lot], tools, db, "rerun", RUN_TIMEOUT_S)
        world = world_snapshot(sims)
    assert commands_for(db, "K02", command) == ["OK"], f"{command} sent again on the rerun"
    assert res.code == 0, f"rerun failed ({res.code}):\n{res.stdout}\n{res.stderr}"
    assert_world_sound(world, WAFERS)
