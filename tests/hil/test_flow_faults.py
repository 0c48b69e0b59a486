"""Faults during a step, injected in the simulators while a lot runs through the line.

Each ends as PROCESS.md and docs/sequencer.md prescribe: the tool left safe, the wafer
ABORTED (its irreversible process began) or held for disposition (STOPPED) with the
reason, the other wafers carrying on where that is safe, and the run never hangs.
The run is ``run_lot_objects`` in-process on its own thread; the test's thread
watches the tools (in-process, every 0.5 ms) and injects at the moment named.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from sequencer.runner.run_report import RunReport
from simulators.runner import SimThread

from .flowkit import (
    InProcessRun,
    assert_accounted,
    assert_world_sound,
    commands_for,
    job_transitions,
    journal_alarms,
    oven_reading,
    rows_by_wafer,
    scpi,
    tool_state,
    wait_for,
    world_snapshot,
    write_lot,
)
from .holdkit import ack, wait_held

SCALE = 3000.0
RUN_TIMEOUT_S = 60.0
WAFERS = ["F01", "F02", "F03"]


def _inject(sims: SimThread, tool: str, fault: str, **params: Any) -> None:
    sims.call(sims.faults[tool].inject, fault, **params)


def _clear(sims: SimThread, tool: str, fault: str) -> None:
    sims.call(sims.faults[tool].clear, fault)


def _on(sims: SimThread, tool: str, wafer_id: str, *states: str) -> bool:
    """The SCPI tool holds ``wafer_id`` in one of ``states``."""
    sim = sims.tools[tool]
    held = sim.chuck if tool == "exposure" else (sim.wafer.wafer_id if sim.wafer else None)
    return held == wafer_id and tool_state(sims, tool) in states


def _start(tmp_path: Path, sims: SimThread, lot_id: str, wafers: list[str] = WAFERS,
           **overrides: Any) -> tuple[InProcessRun, Path]:
    lot = write_lot(tmp_path, lot_id, "FLOW-A", wafers)
    db = tmp_path / "journal.db"
    return InProcessRun(sims, [lot], db, overrides or None), db


def _etcher_safe(sims: SimThread) -> None:
    assert scpi(sims, "etcher", "SYST:STAT?") == "IDLE"
    assert float(scpi(sims, "etcher", "RF:FORW?")) == 0.0
    assert scpi(sims, "etcher", "WAF:ID?") == "NONE"


def _oven_safe(sims: SimThread) -> None:
    oven = oven_reading(sims)
    assert oven["state"] not in ("PURGING", "RUNNING", "PAUSED", "COOLING"), oven
    assert not oven["contactor"], f"heaters still on: {oven}"
    assert oven["cassette"] == [], f"wafers left in the oven: {oven}"


def _report(run: InProcessRun, db: Path, wafers: list[str]) -> tuple[RunReport, dict]:
    report = run.report(RUN_TIMEOUT_S)
    states = rows_by_wafer(report)
    assert states == assert_accounted(db, wafers), "report and journal disagree"
    return report, states


@pytest.mark.timeout(90)
def test_lamp_failure_mid_exposure(tmp_path: Path) -> None:
    """The lamp fails while F02 is exposed: F02 ABORTED (its exposure began), the cell left
    safe (shutter closed, job aborted, F02 unloaded to the stocker) and HELD: F03 is not
    loaded and the cell's alarm is not cleared until a person acknowledges it (after the
    lamp is replaced); then F03 goes on. F01, already developed, carries on meanwhile."""
    with SimThread(time_scale=SCALE, seed=11) as sims:
        # at this time scale F02's exposure lasts ~10 ms of wall time: the lamp fails from
        # inside the simulator, right after the start of F02's exposure is accepted, so a
        # loaded machine cannot make the fault land after the exposure
        cell = sims.tools["exposure"]
        accept = cell.execute

        async def execute(line: str, *args: Any, **kwargs: Any) -> str | None:
            reply = await accept(line, *args, **kwargs)
            if re.search(r"EXP(OSURE)?:STAR", line.upper()) and cell.chuck == "F02" \
                    and not sims.faults["exposure"].is_on("lamp_fail"):
                sims.faults["exposure"].inject("lamp_fail")
            return reply

        sims.call(setattr, cell, "execute", execute)
        run, db = _start(tmp_path, sims, "LAMP-1")
        alarm_id, text = wait_held(db, "exposure", RUN_TIMEOUT_S, done=run.done)
        assert "LAMP_FAIL" in text and "process" in text
        time.sleep(0.5)  # ~25 min of tool time: F03 would have been loaded by now
        assert not sims.tools["exposure"].shutter_open
        assert scpi(sims, "exposure", "WAF:ID?") == "NONE"
        assert scpi(sims, "exposure", "JOB:LAST?").startswith(tuple(
            f"{n},F02,EXPOSE,ABORTED" for n in range(1, 10)))
        assert scpi(sims, "exposure", "JOB:COUN? F03") == "0", "F03 went into a held cell"
        assert "LAMP_FAIL" in scpi(sims, "exposure", "ALAR?"), "cleared without a person"
        _clear(sims, "exposure", "lamp_fail")  # the lamp is replaced
        assert "acknowledged" in ack(db, alarm_id)
        _, states = _report(run, db, WAFERS)
        world = world_snapshot(sims)
    assert states["F01"] == states["F03"] == ("PROCESSED", "")
    assert states["F02"][0] == "ABORTED" and "LAMP_FAIL" in states["F02"][1], states["F02"]
    assert_world_sound(world, WAFERS, processed=["F01", "F03"])
    assert world["wafers"]["F02"]["cure_batches"] == []
    assert world["wafers"]["F03"]["exposures"] == 1


@pytest.mark.timeout(90)
def test_oven_door_opened_mid_cure(tmp_path: Path) -> None:
    """The door opens at 320 °C: the oven aborts (heaters off). The batch is held for
    disposition with the reason, never etched; the oven is left cool, empty, unlocked."""
    with SimThread(time_scale=SCALE, seed=12) as sims:
        run, db = _start(tmp_path, sims, "DOOR-1")
        wait_for(lambda: (tool_state(sims, "oven") == "RUNNING"
                          and sims.tools["oven"].segment == 1) or run.done(),
                 RUN_TIMEOUT_S, "the oven at its 320 °C segment")
        _inject(sims, "oven", "door_open")
        wait_for(lambda: tool_state(sims, "oven") in ("ABORTED", "IDLE") or run.done(),
                 RUN_TIMEOUT_S, "the oven to abort")
        _clear(sims, "oven", "door_open")  # the operator shuts it again
        _, states = _report(run, db, WAFERS)
        world = world_snapshot(sims)
        _oven_safe(sims)
    for w in WAFERS:
        assert states[w][0] == "STOPPED" and "cure batch 1 failed" in states[w][1], states[w]
    assert_world_sound(world, WAFERS, processed=[])
    assert all(world["wafers"][w]["etches"] == 0 for w in WAFERS)
    assert any(kind == "CURE_FAILED" for _, kind, _ in journal_alarms(db))


@pytest.mark.timeout(90)
def test_o2_purge_failure(tmp_path: Path) -> None:
    """A leak keeps O2 high: the purge never finishes, the oven aborts after 60 min
    without heating. The batch is held (uncured, never etched), the oven safe."""
    with SimThread(time_scale=SCALE, seed=13) as sims:
        _inject(sims, "oven", "o2_purge_fail")
        run, db = _start(tmp_path, sims, "PURGE-1")
        _, states = _report(run, db, WAFERS)
        world = world_snapshot(sims)
        _oven_safe(sims)
    for w in WAFERS:
        assert states[w][0] == "STOPPED", states[w]
        assert "cure batch" in states[w][1] and "ABORTED" in states[w][1], states[w]
        assert world["wafers"][w]["degree_of_cure"] == 0.0
    assert_world_sound(world, WAFERS, processed=[])


@pytest.mark.timeout(90)
def test_rf_reflected_mid_etch(tmp_path: Path) -> None:
    """Reflected power trips the etcher while F02 is etched (RF off, job aborted): F02
    ABORTED with the alarm; the etcher left safe (F02 vented out) and HELD: F03 is not
    loaded into it, and its RF_REFLECTED stays latched, until a person acknowledges the
    alarm; then the clear is sent and F03 is etched."""
    with SimThread(time_scale=SCALE, seed=14) as sims:
        run, db = _start(tmp_path, sims, "RF-1")
        wait_for(lambda: _on(sims, "etcher", "F02", "ETCHING") or run.done(),
                 RUN_TIMEOUT_S, "F02 etching")
        _inject(sims, "etcher", "rf_reflected")
        wait_for(lambda: tool_state(sims, "etcher") == "ALARM" or run.done(),
                 RUN_TIMEOUT_S, "the etcher's RF_REFLECTED alarm")
        _clear(sims, "etcher", "rf_reflected")  # the match network is fixed
        alarm_id, text = wait_held(db, "etcher", RUN_TIMEOUT_S, done=run.done)
        assert "RF_REFLECTED" in text and "safety" in text
        time.sleep(0.5)
        assert scpi(sims, "etcher", "JOB:COUN? F03") == "0", "F03 went into a held etcher"
        assert scpi(sims, "etcher", "WAF:ID?") == "NONE"
        assert "RF_REFLECTED" in scpi(sims, "etcher", "ALAR?"), "cleared without a person"
        ack(db, alarm_id)
        _, states = _report(run, db, WAFERS)
        world = world_snapshot(sims)
        _etcher_safe(sims)
        assert scpi(sims, "etcher", "ALAR?") == "NONE"
    assert states["F01"] == states["F03"] == ("PROCESSED", "")
    assert states["F02"][0] == "ABORTED" and "RF_REFLECTED" in states["F02"][1], states["F02"]
    assert_world_sound(world, WAFERS, processed=["F01", "F03"])
    assert world["wafers"]["F02"]["etches"] == 1


@pytest.mark.timeout(90)
def test_etcher_connection_dropped_mid_etch(tmp_path: Path) -> None:
    """The link drops while F02 etches: the etch runs on (the tool never waits on the
    host); the driver reconnects (probing first) and repeats the poll it lost. The same
    job is followed: no second start, every wafer etched once and open."""
    with SimThread(time_scale=SCALE, seed=15) as sims:
        run, db = _start(tmp_path, sims, "DROP-1")
        wait_for(lambda: _on(sims, "etcher", "F02", "ETCHING") or run.done(),
                 RUN_TIMEOUT_S, "F02 etching")
        _inject(sims, "etcher", "drop")
        _, states = _report(run, db, WAFERS)
        world = world_snapshot(sims)
        _etcher_safe(sims)
    assert set(states.values()) == {("PROCESSED", "")}
    assert_world_sound(world, WAFERS)
    assert commands_for(db, "F02", "START_ETCH") == ["OK"]


@pytest.mark.timeout(90)
def test_etcher_link_down_mid_etch(tmp_path: Path) -> None:
    """The link stays dead for ~3 s wall (longer than the 2 s reply timeout) while F02
    etches: the sequencer marks the etcher UNKNOWN, raises COMMS_LOST, pauses the job,
    reconnects with back-off, reads the tool back and follows the same job."""
    with SimThread(time_scale=SCALE, seed=17) as sims:
        run, db = _start(tmp_path, sims, "MUTE-1")
        wait_for(lambda: _on(sims, "etcher", "F02", "ETCHING") or run.done(),
                 RUN_TIMEOUT_S, "F02 etching")
        _inject(sims, "etcher", "mute")
        _inject(sims, "etcher", "drop")
        time.sleep(3.0)
        _clear(sims, "etcher", "mute")
        _, states = _report(run, db, WAFERS)
        world = world_snapshot(sims)
        _etcher_safe(sims)
    assert set(states.values()) == {("PROCESSED", "")}
    assert_world_sound(world, WAFERS)
    assert commands_for(db, "F02", "START_ETCH") == ["OK"]
    assert ("etcher", "COMMS_LOST") in {(t, k) for t, k, _ in journal_alarms(db)}
    assert ("PROCESSING", "PAUSING") in job_transitions(db, "MUTE-1")


@pytest.mark.timeout(90)
def test_cure_to_etch_queue_time_breach(tmp_path: Path) -> None:
    """Cure end → etch start limited to 300 tool s: the first wafer starts its etch well
    within it; the other two cannot (one etch takes longer): held with the reason, cured,
    never etched."""
    with SimThread(time_scale=2000.0, seed=16) as sims:
        run, db = _start(tmp_path, sims, "QTIME-1", q_cure_etch_s=300.0)
        _, states = _report(run, db, WAFERS)
        world = world_snapshot(sims)
        _etcher_safe(sims)
    assert states["F01"] == ("PROCESSED", "")
    for w in ("F02", "F03"):
        assert states[w][0] == "STOPPED" and "cure→etch queue time" in states[w][1], states[w]
        assert world["wafers"][w]["etches"] == 0
    assert_world_sound(world, WAFERS, processed=["F01"])
