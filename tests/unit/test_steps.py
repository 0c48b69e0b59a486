"""Each step against fake tools: the happy path, tool alarms, comms loss."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sequencer.runner.scheduler import Scheduler
from sequencer.runner.steps import ToolHeld
from sequencer.runner.steps.cure import cure_batch
from sequencer.runner.steps.etch import etch_plan, etch_wafer
from sequencer.runner.steps.expose import expose_wafer
from sequencer.runner.steps.polling import next_poll_s
from sequencer.store.journal import Journal
from tests.unit.seq_fakes import Line, fast_config, flow, line, lot

pytestmark = pytest.mark.timeout(20)


def setup(ln: Line, n: int = 1, **cfg: Any) -> Scheduler:
    sched = Scheduler([lot("L1", n, flow(batch_size=n))], ln.tools, ln.handling,
                      Journal(":memory:", now=ln.clock.now), ln.clock, fast_config(**cfg))
    sched._load()
    for job in sched.jobs.values():
        job.start_processing()
    return sched


def expose(sched: Scheduler, i: int = 0) -> bool:
    return asyncio.run(expose_wafer(sched.ctx, sched.ctx.exposure(), sched.wafers[i],
                                    sched.flows["L1"].exposure))


def cured(sched: Scheduler, ln: Line) -> None:
    """Make every wafer developed and cured (for etch tests)."""
    for w in sched.wafers:
        w.start()
        w.data.developed, w.data.cured = True, True
        w.data.residual_um, w.data.residual_after_cure_um = 2.0, 1.5
        w.data.develop_end = w.data.cure_end = ln.clock.now()


def etch(sched: Scheduler, i: int = 0) -> bool:
    return asyncio.run(etch_wafer(sched.ctx, sched.ctx.etcher(), sched.wafers[i],
                                  sched.flows["L1"].etch))


def test_expose_journals_intents_before_outcomes_and_the_result() -> None:
    ln = line()
    sched = setup(ln)
    assert expose(sched) is True
    w = sched.wafers[0]
    assert w.data.developed and w.data.depth_um == 7.5 and w.data.location == "stocker"
    cmds = sched.ctx.journal.commands("exposure")
    assert [c.command for c in cmds] == ["LOAD", "START_EXPOSURE", "START_DEVELOP", "UNLOAD"]
    assert all(c.outcome == "OK" for c in cmds)
    assert cmds[1].before == {"boot": 7, "job_no": 0, "count": 0}
    assert sched.ctx.journal.results("L1-01")[0][1]["residual_um"] == 2.0


def test_alarm_mid_exposure_aborts_the_wafer_leaves_the_tool_safe_and_holds_it() -> None:
    ln = line()
    ln.exposure.alarm_in["EXPOSING"] = "DOOR_OPEN"
    sched = setup(ln)
    with pytest.raises(ToolHeld) as held:
        expose(sched)
    assert held.value.alarms == ("DOOR_OPEN",)
    w = sched.wafers[0]
    assert w.state == "ABORTED" and "DOOR_OPEN" in w.data.reason
    assert ln.exposure.calls.count("unload") == 1 and ln.exposure._state == "IDLE"
    assert w.data.location == "stocker"
    assert "clear_alarms" not in ln.exposure.calls, "only a person's acknowledgement clears"
    safe = [c for c in sched.ctx.journal.commands("exposure") if c.command == "MAKE_SAFE"]
    assert [c.outcome for c in safe] == ["OK"] and safe[0].args["fate"] == "abort"


def test_alarm_while_loading_holds_the_unexposed_wafer() -> None:
    ln = line()
    ln.exposure.alarm_in["LOADING"] = "VACUUM_LOSS"
    sched = setup(ln)
    with pytest.raises(ToolHeld):
        expose(sched)
    w = sched.wafers[0]
    assert w.state == "STOPPED" and "VACUUM_LOSS" in w.data.reason
    assert ln.exposure.counts == {}


def test_etch_plan_follows_the_recipe() -> None:
    plan = etch_plan(flow().etch, 1.5)
    assert (plan.etch_time, plan.overetch, plan.endpoint) == (180, 30, False)
    ep = etch_plan(flow(endpoint=True).etch, 1.5)
    assert ep.etch_time == 270 and ep.target == 1.5 and ep.expected_s == 180


def test_etch_wafer_not_open_is_rejected_and_the_lot_goes_on() -> None:
    ln = line()
    sched = setup(ln, 2)
    cured(sched, ln)
    ln.etcher.not_open.add("L1-01")
    assert etch(sched, 0) is False and etch(sched, 1) is True
    assert sched.wafers[0].state == "REJECTED" and "not open" in sched.wafers[0].data.reason
    assert sched.wafers[1].state == "PROCESSED"
    assert sched.ctx.journal.traces("L1-02")[0][0] == "oes_co"


def test_alarm_mid_etch_aborts_the_wafer_and_unloads_it() -> None:
    ln = line()
    ln.etcher.alarm_in["ETCHING"] = "RF_REFLECTED"
    sched = setup(ln)
    cured(sched, ln)
    with pytest.raises(ToolHeld) as held:
        etch(sched)
    assert held.value.alarms == ("RF_REFLECTED",)
    w = sched.wafers[0]
    assert w.state == "ABORTED" and "RF_REFLECTED" in w.data.reason
    assert ln.etcher.calls.count("unload") == 1 and w.data.location == "stocker"
    assert "clear_alarms" not in ln.etcher.calls


def test_comms_loss_after_etch_start_follows_the_job_without_resending() -> None:
    ln = line()
    ln.etcher.fail["start_etch"] = "after"  # the tool started; the reply was lost
    ln.etcher.fail["etch_status"] = "before"  # and the link drops again while polling
    sched = setup(ln)
    cured(sched, ln)
    assert etch(sched) is True
    assert ln.etcher.calls.count("start_etch") == 1 and ln.etcher.etched == ["L1-01"]
    start = [c for c in sched.ctx.journal.commands("etcher") if c.command == "START_ETCH"]
    assert [c.outcome for c in start] == ["STARTED"]
    kinds = [a.kind for a in sched.ctx.alarms.raised]
    assert kinds == ["COMMS_LOST", "COMMS_LOST"]
    assert ln.etcher.connects == 2  # reconnected, read back, then carried on
    job = [dst for _, dst, _ in sched.ctx.journal.transitions("L1")]
    assert job[3:] == ["PAUSING", "PAUSED", "PROCESSING"] * 2 + ["PROCESS_COMPLETE"]


def test_comms_loss_before_etch_start_sends_it_once_more() -> None:
    ln = line()
    ln.etcher.fail["start_etch"] = "before"  # nothing reached the tool
    sched = setup(ln)
    cured(sched, ln)
    assert etch(sched) is True
    start = [c.outcome for c in sched.ctx.journal.commands("etcher") if c.command == "START_ETCH"]
    assert start == ["NOT_STARTED", "OK"] and ln.etcher.etched == ["L1-01"]


def test_etcher_that_stays_unreachable_is_down_not_a_hang() -> None:
    from sequencer.runner.steps import ToolDown

    ln = line()
    sched = setup(ln)
    cured(sched, ln)
    orig = ln.etcher.start_etch

    def start_then_die() -> None:
        ln.etcher.down = False
        try:
            orig()
        finally:
            ln.etcher.down = True

    ln.etcher.start_etch = start_then_die  # type: ignore[method-assign]
    with pytest.raises(ToolDown):
        etch(sched)


def test_etch_refuses_a_wafer_that_was_not_cured() -> None:
    ln = line()
    sched = setup(ln)
    sched.wafers[0].start()
    assert etch(sched) is False
    assert "not cured" in sched.wafers[0].data.reason and ln.etcher.calls == []


def _cure(sched: Scheduler, ln: Line) -> list:
    for w in sched.wafers:
        w.start()
        w.data.developed, w.data.develop_end, w.data.residual_um = True, ln.clock.now(), 2.0
    return asyncio.run(cure_batch(sched.ctx, sched.ctx.oven(), sched.wafers,
                                  sched.flows["L1"].cure))


def test_cure_records_batch_profile_and_time_at_temperature() -> None:
    ln = line(cure_s=2000.0)
    sched = setup(ln, 2)
    done = _cure(sched, ln)
    assert [w.wafer_id for w in done] == ["L1-01", "L1-02"]
    w = done[0]
    assert w.data.cure_batch == 1 and ln.oven.program.batch_no == 1
    assert ln.oven.program.high_limit_c == 345.0 and ln.oven.program.segments[-1][0] == 320.0
    assert 0.3 * 2000 < w.data.time_at_temp_s < 0.5 * 2000  # the fake soaks 40 %..80 %
    kind, profile = sched.ctx.journal.traces("batch-1")[0]
    assert kind == "oven_profile" and len(profile) > 10
    assert w.data.residual_after_cure_um == 1.5 and w.data.location == "stocker"


def test_batch_number_is_above_anything_the_oven_reported() -> None:
    ln = line()
    ln.oven.batch = 41
    sched = setup(ln)
    _cure(sched, ln)
    assert ln.oven.starts == [42]


def test_cure_aborted_holds_the_batch_unloads_and_holds_the_oven_unacknowledged() -> None:
    ln = line()
    ln.oven.abort_at = 0.5
    sched = setup(ln, 2)
    with pytest.raises(ToolHeld) as held:
        _cure(sched, ln)
    assert held.value.tool == "oven" and held.value.alarms == ("OVER_TEMPERATURE",)
    assert all(w.state == "STOPPED" and "cure batch 1 failed" in w.data.reason
               for w in sched.wafers)
    assert "ack_alarms" not in ln.oven.calls and ln.oven.alarm_word == ("OVER_TEMPERATURE",)
    assert all(w.data.location == "stocker" and not w.data.cured for w in sched.wafers)
    assert [a.kind for a in sched.ctx.alarms.raised] == ["CURE_FAILED"]


def test_develop_to_cure_queue_time_breach_holds_before_start() -> None:
    ln = line()
    sched = setup(ln, 2, q_develop_cure_s=100.0)
    for w in sched.wafers:
        w.start()
        w.data.developed, w.data.residual_um = True, 2.0
    sched.wafers[0].data.develop_end = ln.clock.now() - 500.0
    sched.wafers[1].data.develop_end = ln.clock.now()
    done = asyncio.run(cure_batch(sched.ctx, sched.ctx.oven(), sched.wafers,
                                  sched.flows["L1"].cure))
    assert [w.wafer_id for w in done] == ["L1-02"]
    assert sched.wafers[0].state == "STOPPED" and "queue time" in sched.wafers[0].data.reason
    assert not sched.wafers[0].data.cured and sched.wafers[0].data.location == "stocker"


def test_a_start_followed_by_the_tools_own_alarm_code_is_known_to_be_made() -> None:
    """The tool accepts the start, then an alarm queues +202: the error check reads it as
    the start's error. The tool's job count says the start was made: journal STARTED and
    follow it (never a blind 'refused' for a partly exposed wafer)."""
    ln = line()
    sched = setup(ln)
    ln.exposure.fail["start_exposure"] = "alarm_after"
    assert expose(sched) is True
    cmds = {c.command: c.outcome for c in sched.ctx.journal.commands("exposure")}
    assert cmds["START_EXPOSURE"] == "STARTED"
    assert ln.exposure.counts["L1-01"] == 1, "the exposure must not be sent again"


def test_a_start_the_tool_really_refused_stays_refused() -> None:
    ln = line()
    sched = setup(ln)
    ln.exposure.fail["start_exposure"] = "refuse"  # -221, no job made
    assert expose(sched) is False
    w = sched.wafers[0]
    cmds = {c.command: c.outcome for c in sched.ctx.journal.commands("exposure")}
    assert cmds["START_EXPOSURE"] == "REFUSED"
    assert ln.exposure.counts.get(w.wafer_id, 0) == 0
    assert w.state == "STOPPED" and "Settings conflict" in w.data.reason
    assert w.data.location == "stocker", "the unexposed wafer is unloaded and taken back"


def test_the_exposure_recipe_reaches_the_tools_settings() -> None:
    ln = line()
    sched = setup(ln)
    assert expose(sched) is True
    r = sched.flows["L1"].exposure
    assert ln.exposure.settings == {"dose": r.dose_mj_cm2, "focus": r.focus_um,
                                    "develop_time": int(r.develop_s), "reticle": r.reticle}
    calls = ln.exposure.calls
    assert calls[calls.index("remote"):][:2] == ["remote", "set"]  # the four on one line


def test_the_etch_plan_reaches_the_etchers_apply_recipe() -> None:
    ln = line()
    sched = setup(ln)
    cured(sched, ln)
    assert etch(sched) is True
    plan = etch_plan(sched.flows["L1"].etch, 1.5)
    assert ln.etcher.recipe == plan.settings()
    assert set(plan.settings()) == {"o2", "cf4", "pressure", "rf_power", "etch_time",
                                    "overetch", "endpoint", "target"}


def test_a_lost_query_is_recovered_and_repeated_naming_the_driver_method() -> None:
    ln = line()
    ln.exposure.fail["status"] = "before"  # the intensity read before the exposure wait
    sched = setup(ln)
    assert expose(sched) is True
    lost = [a for a in sched.ctx.alarms.raised if a.kind == "COMMS_LOST"]
    assert len(lost) == 1 and lost[0].text == "status: exposure: status: timeout"
    assert ln.exposure.connects == 1 and ln.exposure.calls.count("start_exposure") == 1


def test_a_load_whose_reply_was_lost_is_reconciled_not_sent_again() -> None:
    ln = line()
    ln.exposure.fail["load"] = "after"  # the wafer went in; the reply was lost
    sched = setup(ln)
    assert expose(sched) is True
    assert ln.exposure.calls.count("load") == 1
    load = [c for c in sched.ctx.journal.commands("exposure") if c.command == "LOAD"]
    assert [c.outcome for c in load] == ["STARTED"] and load[0].wafer_ids == ("L1-01",)
    lost = [a.text for a in sched.ctx.alarms.raised if a.kind == "COMMS_LOST"]
    assert lost == ["LOAD: exposure: load: reply lost"]


WRONG_CALLS = """
from sequencer.runner.steps import StepContext


async def wrong(ctx: StepContext) -> None:
    h = ctx.exposure("exposure")
    await h.q(h.driver.set, "dosage", 318.0)
    await ctx.etcher("etcher-2").q(ctx.etcher("etcher-2").driver.apply_recipe, 1.0)
    n: str = await ctx.oven().q(ctx.oven().driver.batch_no)
    await h.q("start_exposure")
"""


@pytest.mark.timeout(180)
def test_the_type_checker_follows_a_tool_call_to_the_drivers_protocol(tmp_path: Path) -> None:
    from mypy import api

    src = tmp_path / "wrong_calls.py"
    src.write_text(textwrap.dedent(WRONG_CALLS))
    out, _, status = api.run([str(src), "--no-error-summary", "--cache-dir",
                              str(Path(__file__).parents[2] / ".mypy_cache")])
    mine = [ln for ln in out.splitlines() if f"{src.name}:" in ln and ": error: " in ln]
    lines = [ln.split(": error: ")[0].rsplit(":", 1)[1] for ln in mine]
    assert status == 1 and lines == ["7", "8", "9", "10"], out  # one error per wrong call
    assert "'dosage'" in mine[0] and "Missing positional arguments" in mine[1]


def test_a_wait_right_after_its_start_does_not_poll_a_tool_that_can_only_be_busy() -> None:
    """After LOAD, DEVELOP:STARt and UNLOAD the first state poll comes when the schedule's
    second would (``ToolHandle.wait(just_started=True)``), not at once: a reading then
    could only say LOADING / DEVELOPING / UNLOADING. Checked on the fake's own call log."""
    ln = line()
    sched = setup(ln)
    seen: list[tuple[str, float]] = []
    for name in ("state", "load", "start_develop", "unload"):
        real = getattr(ln.exposure, name)

        def logged(*a: Any, _real: Any = real, _name: str = name) -> Any:
            seen.append((_name, ln.clock.now()))
            return _real(*a)

        setattr(ln.exposure, name, logged)
    assert expose(sched) is True
    recipe = sched.flows["L1"].exposure
    nominal = {"load": 20.0, "start_develop": float(recipe.develop_s) + 10.0, "unload": 15.0}
    for start, expected in nominal.items():
        i = next(i for i, (n, _) in enumerate(seen) if n == start)
        t_poll = next(t for n, t in seen[i + 1:] if n == "state")
        first = next_poll_s(sched.ctx.exposure().poll_s, 0.0, expected)  # 20 s or less
        assert t_poll - seen[i][1] >= 0.9 * first > 5.0, (start, t_poll - seen[i][1])
