"""Cure excursions and the oven's own alarms, on the simulators over their real transports.

What was seen: ``n2_flow_low`` during the 320 °C soak let O2 rise to ~30 000 ppm for
~20 min of tool time, with no alarm and every wafer PROCESSED; and the sequencer's own
ACK ALARMS cleared the latched high-limit trip of a heater that stuck on. Here: the
excursion holds the whole batch (never etched: the etcher's own ``JOB:COUNt?`` is 0),
with a CURE_EXCURSION alarm and a profile that keeps O2, nitrogen and the alarm word;
the high-limit trip holds the batch and the oven, and is still latched on the oven
(read with a pymodbus client) after viaform has finished.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

import sequencer.runner.workers as workers_mod
from sequencer.runner.steps import ToolHeld
from sequencer.store.history import record_ack
from simulators.runner import SimThread
from tests.sqlitekit import connected

from .flowkit import (
    InProcessRun,
    assert_accounted,
    assert_world_sound,
    journal_alarms,
    journal_states,
    rows_by_wafer,
    scpi,
    tool_state,
    wait_for,
    world_snapshot,
    write_lot,
)

SCALE = 3000.0
RUN_TIMEOUT_S = 90.0
WAFERS = ["X01", "X02", "X03"]


def _profile(db: Path, batch: int = 1) -> list[list[Any]]:
    with connected(f"file:{db}?mode=ro", uri=True) as con:
        (data,) = con.execute("SELECT data FROM traces WHERE subject=? AND kind='oven_profile'",
                              (f"batch-{batch}",)).fetchone()
    return json.loads(data)


def _soaking_at(sims: SimThread, segment: int) -> bool:
    oven = sims.tools["oven"]
    return (tool_state(sims, "oven") == "RUNNING" and oven.segment == segment
            and getattr(oven.phase, "name", None) == "SOAK")


def _held_tools(monkeypatch: pytest.MonkeyPatch) -> list[ToolHeld]:
    """Every ToolHeld the cure step raises to the scheduler (the step is wrapped only to
    watch; what it does is untouched)."""
    seen: list[ToolHeld] = []
    real = workers_mod.cure_batch

    async def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return await real(*args, **kwargs)
        except ToolHeld as exc:
            seen.append(exc)
            raise

    monkeypatch.setattr(workers_mod, "cure_batch", watched)
    return seen


def _oven_held_alarm(db: Path, run: InProcessRun) -> int:
    """The id of the TOOL_HELD alarm the scheduler raises for the oven (waited for)."""
    def find() -> int | None:
        try:
            with connected(f"file:{db}?mode=ro", uri=True) as con:
                row = con.execute("SELECT id FROM alarms WHERE tool='oven' AND "
                                  "kind='TOOL_HELD' AND cleared_t IS NULL").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    return wait_for(lambda: find() or (run.done() and -1), RUN_TIMEOUT_S,
                    "the oven held for a person")


def _ack_as_person(db: Path, alarm_id: int, who: str = "tech") -> None:
    """What `viaform alarms --ack ID` writes into the journal file under a run."""
    with connected(db, timeout=5.0) as con:
        con.execute("UPDATE alarms SET cleared_t=? WHERE id=?", (time.time(), alarm_id))
        record_ack(con, alarm_id, time.time(), who)


def _oven_latch(sims: SimThread) -> tuple[bool, int]:
    """(discrete input 3 high limit tripped, alarm word) read over Modbus TCP."""
    host, port = sims.endpoints["oven"]["tcp"]
    c = ModbusTcpClient(host, port=port, timeout=2.0, retries=0)
    assert c.connect()
    try:
        di = c.read_discrete_inputs(0, count=5, device_id=1)
        ir = c.read_input_registers(8, count=1, device_id=1)
        assert not di.isError() and not ir.isError(), (di, ir)
        return bool(di.bits[3]), int(ir.registers[0])
    finally:
        c.close()


@pytest.mark.timeout(150)
def test_n2_flow_low_in_the_320_soak_holds_the_batch_unetched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = _held_tools(monkeypatch)
    with SimThread(time_scale=SCALE, seed=21) as sims:
        lot = write_lot(tmp_path, "N2-1", "FLOW-A", WAFERS)
        db = tmp_path / "journal.db"
        run = InProcessRun(sims, [lot], db)
        wait_for(lambda: _soaking_at(sims, 1) or run.done(), RUN_TIMEOUT_S,
                 "the oven soaking at 320 °C")
        assert not run.done(), "the run ended before the 320 °C soak"
        sims.call(sims.faults["oven"].inject, "n2_flow_low")
        t0 = sims.clock.now()
        wait_for(lambda: sims.clock.now() - t0 >= 20 * 60 or run.done(), RUN_TIMEOUT_S,
                 "20 min of tool time without nitrogen")
        sims.call(sims.faults["oven"].clear, "n2_flow_low")
        alarm_id = _oven_held_alarm(db, run)
        assert alarm_id > 0, "the oven was not held for a person"
        etch_counts = {w: scpi(sims, "etcher", f"JOB:COUNt? {w}") for w in WAFERS}
        _ack_as_person(db, alarm_id)  # the technician has restored the nitrogen
        report = run.report(RUN_TIMEOUT_S)
        assert etch_counts == {w: scpi(sims, "etcher", f"JOB:COUNt? {w}") for w in WAFERS}
        etch_counts = {w: scpi(sims, "etcher", f"JOB:COUNt? {w}") for w in WAFERS}
        world = world_snapshot(sims)
    states = rows_by_wafer(report)
    assert states == assert_accounted(db, WAFERS)
    for w in WAFERS:
        state, reason = states[w]
        assert state == "STOPPED", (w, state, reason)
        assert "cure excursion: O2 " in reason and "(limit 20)" in reason, reason
        assert "N2 flow " in reason and "N2_FLOW_LOW" in reason, reason
    o2_ppm = int(states["X01"][1].split("cure excursion: O2 ")[1].split(" ppm")[0])
    assert o2_ppm > 1000, states["X01"]
    assert etch_counts == dict.fromkeys(WAFERS, "0"), etch_counts
    assert_world_sound(world, WAFERS, processed=[])
    assert all(world["wafers"][w]["etches"] == 0 for w in WAFERS)
    excursions = [t for _, kind, t in journal_alarms(db) if kind == "CURE_EXCURSION"]
    assert any("O2" in t for t in excursions) and any("N2 flow" in t for t in excursions)
    assert len(excursions) == len(set(t.split(":")[1].split()[0] for t in excursions)), \
        f"one alarm per excursion kind: {excursions}"
    profile = _profile(db)
    header, rows = profile[0], profile[1:]
    for col in ("t_s", "chamber_c", "wafer_c", "setpoint_c", "o2_ppm", "n2_slm", "alarms",
                "state"):
        assert col in header, header
    o2, n2, alarms = (header.index(c) for c in ("o2_ppm", "n2_slm", "alarms"))
    heating = [r for r in rows if r[header.index("state")] in ("RUNNING", "COOLING")]
    assert max(r[o2] for r in heating) == o2_ppm  # the reason's worst value is the profile's
    assert min(r[n2] for r in heating) < 5.0
    assert any("N2_FLOW_LOW" in r[alarms] for r in rows)
    # the oven's own N2_FLOW_LOW / O2_HIGH hold it for a person once the batch is out
    assert held and held[0].tool == "oven" and "N2_FLOW_LOW" in held[0].alarms


@pytest.mark.timeout(150)
def test_heater_stuck_on_trips_high_limit_latch_stays_for_a_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = _held_tools(monkeypatch)
    with SimThread(time_scale=SCALE, seed=22) as sims:
        lot = write_lot(tmp_path, "HOT-1", "FLOW-A", WAFERS)
        db = tmp_path / "journal.db"
        run = InProcessRun(sims, [lot], db)
        wait_for(lambda: _soaking_at(sims, 0) or run.done(), RUN_TIMEOUT_S,
                 "the oven soaking at 150 °C")
        sims.call(sims.faults["oven"].inject, "over_temperature")  # the SSR welds shut
        wait_for(lambda: tool_state(sims, "oven") == "ABORTED" or run.done(), RUN_TIMEOUT_S,
                 "the high-limit trip")
        sims.call(sims.faults["oven"].clear, "over_temperature")  # cause gone; latch stays
        alarm_id = _oven_held_alarm(db, run)
        assert alarm_id > 0, "the oven was not held for a person"
        wait_for(lambda: all(w == "STOPPED" for w, _ in
                             (journal_states(db)[x] for x in WAFERS)), RUN_TIMEOUT_S,
                 "the batch held")
        tripped, word = _oven_latch(sims)
        assert tripped is True and word & 1, "viaform cleared the oven's high-limit latch"
        assert tool_state(sims, "oven") in ("ABORTED", "IDLE")
        etch_counts = {w: scpi(sims, "etcher", f"JOB:COUNt? {w}") for w in WAFERS}
        time.sleep(0.5)  # ~25 min of tool time held: still nobody may clear it
        assert _oven_latch(sims)[0] is True
        report = run.report(RUN_TIMEOUT_S)  # the held oven has no work left: the run ends
        assert _oven_latch(sims)[0] is True, "the run cleared the latch on its way out"
        _ack_as_person(db, alarm_id)  # a person has seen to the heater
        # the next run on this journal finds the oven held, acknowledged: it sends ACK
        # ALARMS (the cause is gone) and cures its own batch
        more = ["X11", "X12"]
        lot2 = write_lot(tmp_path, "HOT-2", "FLOW-A", more)
        report2 = InProcessRun(sims, [lot2], db).report(RUN_TIMEOUT_S)
        after_ack = _oven_latch(sims)
        world = world_snapshot(sims)
    # only after the person's acknowledgement does viaform send ACK ALARMS (cause gone)
    assert after_ack == (False, 0), after_ack
    assert set(rows_by_wafer(report2).values()) == {("PROCESSED", "")}, rows_by_wafer(report2)
    states = rows_by_wafer(report)
    for w in WAFERS:
        state, reason = states[w]
        assert state == "STOPPED" and "cure batch 1 failed" in reason, (w, state, reason)
        assert "OVER_TEMPERATURE" in reason, reason
    assert etch_counts == dict.fromkeys(WAFERS, "0")
    assert_world_sound(world, WAFERS, processed=[])
    assert held and held[0].tool == "oven" and held[0].alarms == ("OVER_TEMPERATURE",)
    assert "acknowledge" in held[0].reason
