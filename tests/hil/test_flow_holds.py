"""Issue 7's "what was seen", on the simulators: never twice, never silent, never less safe.

Each test runs a lot in-process (``InProcessRun``) on the bundled simulators over their
real transports and checks the truth where it is: the tools' own job counts and alarms
(plain sockets), the simulated world, and the journal's reasons. A person's part (an
acknowledgement) is played with the real ``viaform alarms --ack``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulators.runner import SimThread

from .flowkit import (
    InProcessRun,
    SeqProcess,
    assert_accounted,
    commands_for,
    rows_by_wafer,
    scpi,
    tool_state,
    wait_for,
    world_snapshot,
    write_lot,
    write_tools_yaml,
)
from .holdkit import ack, active_holds, wait_held

SCALE = 3000.0
TIMEOUT_S = 60.0
WAFERS = ["H01", "H02", "H03"]


def _run(tmp_path: Path, sims: SimThread, lot_id: str, db_name: str = "journal.db",
         wafers: list[str] = WAFERS) -> tuple[InProcessRun, Path]:
    lot = write_lot(tmp_path, lot_id, "FLOW-A", wafers)
    db = tmp_path / db_name
    return InProcessRun(sims, [lot], db), db


def _inject(sims: SimThread, tool: str, fault: str) -> None:
    sims.call(sims.faults[tool].inject, fault)


def _clear(sims: SimThread, tool: str, fault: str) -> None:
    sims.call(sims.faults[tool].clear, fault)


def _states(run: InProcessRun, db: Path, wafers: list[str] = WAFERS) -> dict:
    states = rows_by_wafer(run.report(TIMEOUT_S))
    assert states == assert_accounted(db, wafers), "report and journal disagree"
    return states


@pytest.mark.timeout(120)
def test_a_latched_alarm_on_an_idle_cell_holds_it_named_until_acknowledged(
        tmp_path: Path) -> None:
    """The lamp failed and was fixed at the tool, but its alarm is still latched: the cell
    is shown held with LAMP_FAIL named (not "not IDLE after 600 s"), no wafer is held or
    loaded; a person acknowledges, viaform clears the alarm, and the lot runs."""
    with SimThread(time_scale=SCALE, seed=21) as sims:
        _inject(sims, "exposure", "lamp_fail")
        wait_for(lambda: tool_state(sims, "exposure") == "ALARM", 10, "the lamp alarm")
        _clear(sims, "exposure", "lamp_fail")  # fixed at the tool; the alarm stays latched
        run, db = _run(tmp_path, sims, "LATCH-1")
        alarm_id, text = wait_held(db, "exposure", TIMEOUT_S, done=run.done)
        assert "LAMP_FAIL" in text and "not IDLE after" not in text
        time.sleep(0.3)
        assert tool_state(sims, "exposure") == "ALARM", "viaform cleared it on its own"
        assert all(scpi(sims, "exposure", f"JOB:COUN? {w}") == "0" for w in WAFERS)
        ack(db, alarm_id)
        states = _states(run, db)
    assert set(states.values()) == {("PROCESSED", "")}


@pytest.mark.timeout(120)
def test_a_door_opened_and_closed_mid_exposure_is_waited_for_then_unloaded(
        tmp_path: Path) -> None:
    """The door opens while H02 is exposed and closes again a little later: the first
    UNLOAD is refused (+201, interlock open); viaform waits for the door and unloads H02
    (ABORTED, in the stocker), holds the cell for a person, then goes on."""
    with SimThread(time_scale=SCALE, seed=22) as sims:
        run, db = _run(tmp_path, sims, "DOOR-2")
        cell = sims.tools["exposure"]
        wait_for(lambda: (cell.chuck == "H02" and tool_state(sims, "exposure") == "EXPOSING")
                 or run.done(), TIMEOUT_S, "H02 exposing")
        _inject(sims, "exposure", "door_open")
        wait_for(lambda: "REFUSED" in commands_for(db, "H02", "UNLOAD") or run.done(),
                 TIMEOUT_S, "an UNLOAD refused while the door is open")
        _clear(sims, "exposure", "door_open")  # the operator shuts the door
        alarm_id, text = wait_held(db, "exposure", TIMEOUT_S, done=run.done)
        assert "DOOR_OPEN" in text and "safety" in text
        assert scpi(sims, "exposure", "WAF:ID?") == "NONE"
        assert world_snapshot(sims)["wafers"]["H02"]["location"] == "stocker"
        ack(db, alarm_id)
        states = _states(run, db)
    assert commands_for(db, "H02", "UNLOAD")[-1] == "OK"
    assert states["H02"][0] == "ABORTED" and "DOOR_OPEN" in states["H02"][1]
    assert states["H01"] == states["H03"] == ("PROCESSED", "")


@pytest.mark.timeout(120)
def test_a_power_cycle_mid_exposure_holds_the_wafer_on_the_tool_and_the_tool(
        tmp_path: Path) -> None:
    """The cell reboots while H02 is exposed: H02 is held for disposition, recorded on the
    cell (nothing sent to unload it blind), the cell held. A person takes H02 off by hand
    and acknowledges; the lot goes on. No traceback, and H02 is never exposed again."""
    with SimThread(time_scale=SCALE, seed=23) as sims:
        run, db = _run(tmp_path, sims, "BOOT-1")
        cell = sims.tools["exposure"]
        wait_for(lambda: (cell.chuck == "H02" and tool_state(sims, "exposure") == "EXPOSING")
                 or run.done(), TIMEOUT_S, "H02 exposing")
        _inject(sims, "exposure", "power_cycle")
        alarm_id, text = wait_held(db, "exposure", TIMEOUT_S, done=run.done)
        assert "rebooted mid-step" in text and "H02" in text
        assert world_snapshot(sims)["wafers"]["H02"]["location"] == "exposure"
        # the technician unloads by hand and carries H02 to the stocker
        scpi(sims, "exposure", "SYST:REM;:WAF:UNL;:SYST:STAT?")
        wait_for(lambda: tool_state(sims, "exposure") == "IDLE", 10, "the manual unload")
        sims.call(sims.world.transfer, ["H02"], "stocker")
        ack(db, alarm_id)
        states = _states(run, db)
        world = world_snapshot(sims)
    assert states["H02"][0] == "STOPPED" and "rebooted mid-step" in states["H02"][1]
    assert states["H01"] == states["H03"] == ("PROCESSED", "")
    assert world["wafers"]["H02"]["exposures"] == 1
    assert world["wafers"]["H02"]["etches"] == 0


@pytest.mark.timeout(120)
def test_a_power_cycle_mid_cure_holds_the_batch_without_a_traceback(tmp_path: Path) -> None:
    """The oven reboots at its 320 °C soak (its program lost): every wafer of the batch is
    held for disposition with the reason, none is etched, and the run ends cleanly."""
    with SimThread(time_scale=SCALE, seed=24) as sims:
        run, db = _run(tmp_path, sims, "OVENBOOT-1")
        wait_for(lambda: (tool_state(sims, "oven") == "RUNNING"
                          and sims.tools["oven"].segment == 1) or run.done(),
                 TIMEOUT_S, "the oven at its 320 °C segment")
        _inject(sims, "oven", "power_cycle")
        states = _states(run, db)
        world = world_snapshot(sims)
    for w in WAFERS:
        assert states[w][0] == "STOPPED" and "lost cure batch 1" in states[w][1], states[w]
        assert world["wafers"][w]["etches"] == 0
    assert active_holds(db, "oven"), "the oven is held for a person"


@pytest.mark.timeout(150)
def test_a_lot_rerun_on_a_fresh_journal_is_held_not_processed_again(tmp_path: Path) -> None:
    """A lot done, then run again on a new journal (another directory, a new --db), and a
    new lot id reusing its wafer ids: the tools' job records win over the empty journal;
    every wafer is held with the reason, none exposed or etched a second time."""
    with SimThread(time_scale=SCALE, seed=25) as sims:
        run, db = _run(tmp_path, sims, "TWICE-1", wafers=["T01", "T02"])
        assert set(_states(run, db, ["T01", "T02"]).values()) == {("PROCESSED", "")}
        for lot_id, name in (("TWICE-1", "other.db"), ("TWICE-2", "third.db")):
            again, db2 = _run(tmp_path, sims, lot_id, db_name=name, wafers=["T01", "T02"])
            states = _states(again, db2, ["T01", "T02"])
            for w in ("T01", "T02"):
                assert states[w][0] == "STOPPED", states[w]
                assert f"the LX-365 reports 1 exposure of {w} that this journal does not " \
                       f"know: held" in states[w][1]
        assert [scpi(sims, "exposure", f"JOB:COUN? {w}") for w in ("T01", "T02")] == ["1"] * 2
        assert [scpi(sims, "etcher", f"JOB:COUN? {w}") for w in ("T01", "T02")] == ["1"] * 2
        world = world_snapshot(sims)
    assert all(world["wafers"][w]["exposures"] == 1 for w in ("T01", "T02"))


@pytest.mark.timeout(150)
def test_a_manual_reset_between_runs_is_named_in_the_batchs_reason(tmp_path: Path) -> None:
    """The run dies mid-cure; with no owner left, a technician resets the oven (its ABORT
    cuts the batch). The rerun holds the batch, and the reason names who reset the oven."""
    from typer.testing import CliRunner

    from sequencer.faces.cli import app

    with SimThread(time_scale=SCALE, seed=26) as sims:
        lot = write_lot(tmp_path, "RESET-1", "FLOW-A", WAFERS)
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        with SeqProcess([lot], tools, db, "first") as first:
            wait_for(lambda: (tool_state(sims, "oven") == "RUNNING"
                              and sims.tools["oven"].segment == 1) or not first.alive(),
                     TIMEOUT_S, "the oven at its 320 °C segment")
            first.kill()
        reset = CliRunner().invoke(app, ["tool", "--daemon", "none", "oven", "reset",
                                         "--config", str(tools)], env={"USER": "bob"})
        assert reset.exit_code == 0, reset.output
        assert tool_state(sims, "oven") == "ABORTED"
        with SeqProcess([lot], tools, db, "rerun") as rerun:
            rerun.result(TIMEOUT_S)
        world = world_snapshot(sims)
    states = assert_accounted(db, WAFERS)
    for w in WAFERS:
        assert states[w][0] == "STOPPED", states[w]
        assert "viaform tool oven reset by bob" in states[w][1], states[w]
        assert world["wafers"][w]["etches"] == 0


@pytest.mark.timeout(120)
def test_a_setting_changed_at_the_tool_refuses_the_start(tmp_path: Path) -> None:
    """Someone changes the dose at the cell's front panel while H02 loads: the read-back
    before EXPOSURE:STARt sees it, the start is refused, H02 is held with the setting, the
    sent and the read value, unloaded to the stocker, and never exposed."""
    import re
    from typing import Any

    with SimThread(time_scale=SCALE, seed=27) as sims:
        cell = sims.tools["exposure"]
        accept = cell.execute

        async def execute(line: str, *args: Any, **kwargs: Any) -> str | None:
            reply = await accept(line, *args, **kwargs)
            if re.search(r"WAF(ER)?:LOAD\s+\"?H02", line.upper()):
                cell.dose = 300.0  # the front panel, after viaform set 318.0
            return reply

        sims.call(setattr, cell, "execute", execute)
        run, db = _run(tmp_path, sims, "READBACK-1")
        states = _states(run, db)
        assert scpi(sims, "exposure", "JOB:COUN? H02") == "0"
        assert scpi(sims, "exposure", "WAF:ID?") == "NONE"
        world = world_snapshot(sims)
    assert states["H02"][0] == "STOPPED"
    assert "dose sent 318.0, tool reads 300.0" in states["H02"][1], states["H02"]
    assert world["wafers"]["H02"]["location"] == "stocker"
    assert world["wafers"]["H02"]["exposures"] == 0
    assert states["H01"] == states["H03"] == ("PROCESSED", "")
