"""The E40 process job machine."""

from __future__ import annotations

import pytest
from transitions import MachineError

from sequencer.states.job import STATES, ProcessJob


def test_states_keep_the_e40_names() -> None:
    assert set(STATES) == {"QUEUED", "SETTING_UP", "WAITING_FOR_START", "PROCESSING",
                           "PROCESS_COMPLETE", "PAUSING", "PAUSED", "STOPPING", "ABORTING",
                           "STOPPED", "ABORTED"}


def test_normal_life_with_a_comms_pause() -> None:
    heard: list[tuple[str, str]] = []
    job = ProcessJob("L1", listener=lambda j, s, d: heard.append((s, d)))
    job.start_processing()
    job.hold_for_comms()
    assert job.state == "PAUSED"
    job.comms_back()
    job.finish()
    assert job.final
    assert [d for _, d in heard] == ["SETTING_UP", "WAITING_FOR_START", "PROCESSING",
                                     "PAUSING", "PAUSED", "PROCESSING", "PROCESS_COMPLETE"]


def test_stop_and_abort_paths() -> None:
    a, b = ProcessJob("A"), ProcessJob("B")
    a.start_processing()
    a.stop()
    a.stopped()
    b.abort_job()
    b.aborted()
    assert (a.state, b.state) == ("STOPPED", "ABORTED")
    with pytest.raises(MachineError):
        a.resume()


def test_cannot_complete_without_processing() -> None:
    with pytest.raises(MachineError):
        ProcessJob("A").finish()


def test_restore_runs_no_callbacks() -> None:
    heard: list[str] = []
    job = ProcessJob("A", listener=lambda *a: heard.append("x"))
    job.restore("PAUSED")
    assert job.state == "PAUSED" and heard == []
