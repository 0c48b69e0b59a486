"""The E94 control job machine: E94's states and transitions, completions, persistence."""

from __future__ import annotations

import pytest
from transitions import MachineError

from sequencer.states.control_job import STATE_CODES, STATES, ControlJob


def test_states_keep_the_e94_names_and_codes() -> None:
    assert STATES == ["QUEUED", "SELECTED", "WAITING_FOR_START", "EXECUTING", "PAUSED",
                      "COMPLETED"]
    assert STATE_CODES["QUEUED"] == 0 and STATE_CODES["COMPLETED"] == 5


def test_user_start_waits_for_start_then_runs_to_normal_completion() -> None:
    heard: list[tuple[str, str, str]] = []
    cj = ControlJob("CJ1", ["PJ1"], ["C1"], listener=lambda j, s, d, t: heard.append((s, d, t)))
    cj.begin()
    assert cj.state == "WAITING_FOR_START"
    cj.start()
    cj.pause()
    cj.resume()
    cj.finish()
    assert cj.final and cj.completion == "normal"
    assert heard == [("QUEUED", "SELECTED", "select"),
                     ("SELECTED", "WAITING_FOR_START", "wait_for_start"),
                     ("WAITING_FOR_START", "EXECUTING", "start"),
                     ("EXECUTING", "PAUSED", "pause"), ("PAUSED", "EXECUTING", "resume"),
                     ("EXECUTING", "COMPLETED", "finish")]


def test_auto_start_goes_straight_to_executing() -> None:
    cj = ControlJob("CJ1", ["PJ1"], ["C1"], auto_start=True)
    cj.begin()
    assert cj.state == "EXECUTING"


@pytest.mark.parametrize("trigger", ["stop", "abort"])
@pytest.mark.parametrize("state", ["SELECTED", "WAITING_FOR_START", "EXECUTING", "PAUSED"])
def test_stop_and_abort_complete_an_active_job_and_say_how(trigger: str, state: str) -> None:
    cj = ControlJob("CJ1", [], [], state=state)
    getattr(cj, trigger)()
    assert cj.state == "COMPLETED"
    assert cj.completion == {"stop": "stopped", "abort": "aborted"}[trigger]


def test_refused_transitions_change_nothing() -> None:
    queued = ControlJob("CJ1", [], [])
    for trigger in (queued.start, queued.pause, queued.finish, queued.stop, queued.abort):
        with pytest.raises(MachineError):
            trigger()
    assert queued.state == "QUEUED"
    done = ControlJob("CJ2", [], [], state="COMPLETED")
    with pytest.raises(MachineError):
        done.deselect()
    selected = ControlJob("CJ3", [], [], state="SELECTED")
    selected.deselect()
    assert selected.state == "QUEUED"


def test_json_round_trip_keeps_everything() -> None:
    cj = ControlJob("CJ1", ["PJ1", "PJ2"], ["C1"], auto_start=True, state="EXECUTING")
    cj.abort()
    again = ControlJob.from_json(cj.to_json())
    assert again.to_json() == cj.to_json()
    assert (again.state, again.completion, again.process_jobs) == ("COMPLETED", "aborted",
                                                                   ["PJ1", "PJ2"])
