"""E10 state per tool from the line's events, with time in each state."""

from __future__ import annotations

from typing import Any

import pytest

from sequencer.faces.http.contract import LineEvent, ToolView
from sequencer.faces.http.e10 import E10Tracker


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ev(what: str, tool: str | None = "etcher", **data: Any) -> LineEvent:
    return LineEvent(kind=what, t=0.0, tool=tool, data=data)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(clock: Clock) -> E10Tracker:
    tr = E10Tracker(clock)
    for name in ("etcher", "oven"):
        tr.track(ToolView(tool=name, connected=True, busy=False))
    return tr


def test_step_makes_the_tool_productive_then_standby_with_times(
        tracker: E10Tracker, clock: Clock) -> None:
    assert tracker.state("etcher") == "STANDBY"
    clock.t += 10
    change = tracker.observe(ev("step_start"))
    assert change is not None and (change.previous, change.state) == ("STANDBY", "PRODUCTIVE")
    clock.t += 300
    tracker.observe(ev("step_end"))
    clock.t += 5
    view = tracker.view("etcher")
    assert view.state == "STANDBY"
    assert view.seconds["PRODUCTIVE"] == pytest.approx(300)
    assert view.seconds["STANDBY"] == pytest.approx(15)
    assert tracker.state("oven") == "STANDBY"  # other tools untouched


def test_comms_loss_and_unacked_alarm_mean_unscheduled_down(
        tracker: E10Tracker, clock: Clock) -> None:
    tracker.observe(ev("step_start"))
    tracker.observe(ev("tool", comms="UNKNOWN"))  # the engine's shape
    tracker.observe(ev("alarm", id=7, kind="comms", text="lost"))
    assert tracker.state("etcher") == "UNSCHEDULED_DOWN"
    tracker.observe(ev("tool", state="OK"))
    assert tracker.state("etcher") == "UNSCHEDULED_DOWN"  # the alarm is still open
    clock.t += 60
    change = tracker.observe(ev("alarm_ack", tool=None, id=7))  # found by alarm id
    assert change is not None and change.state == "PRODUCTIVE"  # the step never ended
    assert tracker.view("etcher").seconds["UNSCHEDULED_DOWN"] == pytest.approx(60)


def test_alarm_that_does_not_stop_the_tool_keeps_its_state(tracker: E10Tracker) -> None:
    assert tracker.observe(ev("alarm", id=1, kind="queue_time", down=False)) is None
    assert tracker.observe(ev("alarm", kind="no id: could never be cleared")) is None
    assert tracker.state("etcher") == "STANDBY"


def test_a_batch_is_productive_until_its_last_wafer_ends(tracker: E10Tracker) -> None:
    for wafer in ("W1", "W2"):
        tracker.observe(LineEvent(kind="step_start", t=0, tool="oven", wafer_id=wafer))
    tracker.observe(LineEvent(kind="step_end", t=0, tool="oven", wafer_id="W1"))
    assert tracker.state("oven") == "PRODUCTIVE"
    tracker.observe(LineEvent(kind="step_end", t=0, tool="oven", wafer_id="W2"))
    assert tracker.state("oven") == "STANDBY"


def test_take_and_give(tracker: E10Tracker) -> None:
    tracker.observe(ev("take"))
    assert tracker.state("etcher") == "ENGINEERING"
    tracker.observe(ev("tool", state="UNKNOWN"))
    assert tracker.state("etcher") == "UNSCHEDULED_DOWN"  # down beats engineering
    tracker.observe(ev("tool", state="OK"))
    assert tracker.state("etcher") == "ENGINEERING"
    tracker.observe(ev("give"))
    assert tracker.state("etcher") == "STANDBY"


def test_tracking_starts_from_the_snapshot(clock: Clock) -> None:
    tr = E10Tracker(clock)
    tr.track(ToolView(tool="oven", connected=True, busy=True))
    tr.track(ToolView(tool="etcher", connected=True, busy=False, engineering=True))
    tr.track(ToolView(tool="exposure", connected=True, busy=False), [(3, "exposure")])
    assert [tr.state(t) for t in ("oven", "etcher", "exposure")] == \
        ["PRODUCTIVE", "ENGINEERING", "UNSCHEDULED_DOWN"]


def test_events_for_unknown_tools_or_other_kinds_change_nothing(tracker: E10Tracker) -> None:
    assert tracker.observe(ev("step_start", tool="stocker")) is None
    assert tracker.observe(ev("job", tool=None, state="PAUSED")) is None
    assert tracker.observe(ev("alarm_ack", tool=None, id="junk")) is None
