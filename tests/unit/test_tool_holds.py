"""Tools held for a person, job records and read-back, on fake tools (the logic; the
simulators' end-to-end tests are in tests/hil/test_flow_holds.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sequencer.runner.run_report import RunReport
from sequencer.runner.scheduler import Scheduler
from sequencer.runner.steps import ToolHeld
from sequencer.runner.steps.expose import expose_wafer
from sequencer.runner.tool_alarms import AlarmClass, classify, holding
from sequencer.store.history import record_ack
from sequencer.store.journal import Journal
from tests.unit.seq_fakes import Line, fast_config, flow, line, lot

pytestmark = pytest.mark.timeout(30)


def _sched(ln: Line, n: int, journal: Journal) -> Scheduler:
    return Scheduler([lot("L1", n, flow(batch_size=n))], ln.tools, ln.handling, journal,
                     ln.clock, fast_config())


async def _ack_when_held(sched: Scheduler, tool: str, who: str = "tech") -> int:
    """A person acknowledges the hold's alarm, as `viaform alarms --ack` does."""
    while tool not in sched.holds.held:
        await asyncio.sleep(0.01)
    alarm_id = sched.holds.held[tool].alarm_id
    await asyncio.sleep(0.05)  # the tool waits: nothing is cleared before the person
    record_ack(sched.ctx.journal.db, alarm_id, time.time(), who)
    sched.ctx.journal.clear_alarm(alarm_id)
    return alarm_id


def _run_with_ack(ln: Line, sched: Scheduler, tool: str) -> tuple[RunReport, list[str]]:
    calls_before_ack: list[str] = []

    async def main() -> RunReport:
        run = asyncio.create_task(sched.run())
        await _ack_when_held(sched, tool)
        calls_before_ack.extend(getattr(ln, tool).calls)
        return await run

    return asyncio.run(main()), calls_before_ack


def test_the_table_classes_every_manual_alarm() -> None:
    assert classify("etcher", "RF_REFLECTED") is AlarmClass.SAFETY
    assert classify("oven", "OVER_TEMPERATURE") is AlarmClass.SAFETY
    assert classify("exposure", "LAMP_FAIL") is AlarmClass.PROCESS
    assert classify("exposure", "LAMP_LOW") is AlarmClass.WARNING
    assert classify("oven", "DEVIATION") is AlarmClass.WARNING
    assert classify("etcher", "SOMETHING_NEW") is AlarmClass.SAFETY  # never waved on
    assert holding("exposure", ("LAMP_LOW", "LAMP_FAIL")) == ("LAMP_FAIL",)


def test_an_etch_alarm_holds_the_etcher_until_a_person_acknowledges_it() -> None:
    """rf_reflected on the first wafer: the next wafer is NOT loaded into the same etcher
    until the alarm is acknowledged; only then is ALARm:CLEar sent, and the lot goes on."""
    ln = line()
    ln.etcher.alarm_in["ETCHING"] = "RF_REFLECTED"
    journal = Journal(":memory:", now=ln.clock.now)
    sched = _sched(ln, 2, journal)
    rep, before_ack = _run_with_ack(ln, sched, "etcher")
    assert "clear_alarms" not in before_ack
    assert before_ack.count("load") == 1, "no second wafer went into the held etcher"
    assert ln.etcher.calls.count("clear_alarms") == 1
    states = sorted(r.state for r in rep.rows)
    assert states == ["ABORTED", "PROCESSED"]
    held = [a for a in sched.ctx.alarms.raised if a.kind == "TOOL_HELD"]
    assert len(held) == 1 and "RF_REFLECTED" in held[0].text and "safety" in held[0].text
    clears = [c for c in journal.commands("etcher") if c.command == "CLEAR_ALARMS"]
    assert [c.args["acked_by"] for c in clears] == ["tech"]


def test_a_tool_whose_cause_is_still_there_stays_held_with_the_tools_reason() -> None:
    ln = line()
    ln.etcher.alarm_in["ETCHING"] = "RF_REFLECTED"
    ln.etcher.sticky_alarm = True  # the clear does not take: the cause is not gone
    journal = Journal(":memory:", now=ln.clock.now)
    sched = _sched(ln, 2, journal)  # the second wafer waits for the etcher

    async def main() -> None:
        run = asyncio.create_task(sched.run())
        first = await _ack_when_held(sched, "etcher")
        while sched.holds.held["etcher"].alarm_id == first:
            await asyncio.sleep(0.01)
        assert "still reports RF_REFLECTED" in sched.holds.held["etcher"].reason
        ln.etcher.sticky_alarm = False  # the technician fixes the match network
        await _ack_when_held(sched, "etcher")
        await run

    asyncio.run(main())
    assert ln.etcher.calls.count("clear_alarms") == 2
    assert [a.kind for a in sched.ctx.alarms.raised].count("TOOL_HELD") == 2


def test_an_idle_tool_with_a_latched_alarm_is_held_and_named_not_timed_out() -> None:
    ln = line()
    ln.exposure.active_alarms = ("LAMP_FAIL",)  # cleared at the tool, still latched
    journal = Journal(":memory:", now=ln.clock.now)
    sched = _sched(ln, 1, journal)
    sched._load()
    with pytest.raises(ToolHeld) as held:
        asyncio.run(expose_wafer(sched.ctx, sched.ctx.exposure(), sched.wafers[0],
                                 sched.flows["L1"].exposure))
    assert "LAMP_FAIL" in held.value.reason and "process" in held.value.reason
    assert "load" not in ln.exposure.calls and "clear_alarms" not in ln.exposure.calls
    assert sched.wafers[0].state == "IN_PROCESS", "the wafer waits for the tool, not held"


def test_a_wafer_the_tool_already_exposed_is_held_never_exposed_again() -> None:
    ln = line()
    ln.exposure.counts["L1-01"] = 1  # exposed under another journal
    journal = Journal(":memory:", now=ln.clock.now)
    sched = _sched(ln, 2, journal)
    rep = asyncio.run(sched.run())
    first = rep.rows[0]
    assert first.state == "STOPPED"
    assert "the LX-365 reports 1 exposure of L1-01 that this journal does not know" in \
        sched.wafers[0].data.reason
    assert ln.exposure.counts == {"L1-01": 1, "L1-02": 1}
    assert rep.rows[1].state == "PROCESSED"


def test_an_exposure_the_journal_does_not_know_found_at_the_start_is_held_not_sent() -> None:
    """The count is read again in the intent's own reading (``steps.start``): an exposure
    of the wafer made at the tool after it was loaded (by hand, say) holds it there, and
    EXPOSURE:STARt is never sent."""
    ln = line()
    orig_load = ln.exposure.load

    def load_then_exposed_by_hand(wafer_id: str) -> Any:
        out = orig_load(wafer_id)
        ln.exposure.counts[wafer_id] = 1
        return out

    ln.exposure.load = load_then_exposed_by_hand  # type: ignore[method-assign]
    journal = Journal(":memory:", now=ln.clock.now)
    sched = _sched(ln, 1, journal)
    rep = asyncio.run(sched.run())
    assert rep.rows[0].state == "STOPPED"
    assert "the LX-365 reports 1 exposure of L1-01 that this journal does not know" in \
        sched.wafers[0].data.reason
    assert "start_exposure" not in ln.exposure.calls
    assert "START_EXPOSURE" not in [c.command for c in journal.commands("exposure")]
    assert ln.exposure.wafer is None  # made safe: unloaded, back in the stocker


def test_a_setting_that_reads_back_different_refuses_the_start() -> None:
    ln = line()
    orig_load = ln.exposure.load

    def load_then_drift(wafer_id: str) -> Any:
        orig_load(wafer_id)
        ln.exposure.settings["dose"] = 300.0  # someone changed it at the tool

    ln.exposure.load = load_then_drift  # type: ignore[method-assign]
    journal = Journal(":memory:", now=ln.clock.now)
    sched = _sched(ln, 1, journal)
    rep = asyncio.run(sched.run())
    w = sched.wafers[0]
    assert rep.rows[0].state == "STOPPED"
    assert "dose sent 318.0, tool reads 300.0" in w.data.reason
    assert ln.exposure.counts == {} and ln.exposure.calls.count("unload") == 1
    assert w.data.location == "stocker"
