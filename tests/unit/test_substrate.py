"""The E90 substrate machine: allowed transitions, reasons, listener, restore."""

from __future__ import annotations

import pytest
from transitions import MachineError

from sequencer.states.substrate import STATES, Substrate
from sequencer.store.journal import Journal


def test_states_keep_the_e90_names() -> None:
    assert STATES == ["NEEDS_PROCESSING", "IN_PROCESS", "PROCESSED", "ABORTED", "STOPPED",
                      "REJECTED", "LOST", "SKIPPED"]


def test_route_and_listener_hears_every_change() -> None:
    heard: list[tuple[str, str, str]] = []
    w = Substrate("W1", "L1", 1, listener=lambda w, s, d, r: heard.append((s, d, r)))
    w.start()
    w.reject(reason="not open")
    assert w.state == "REJECTED" and w.final and w.data.reason == "not open"
    assert heard == [("NEEDS_PROCESSING", "IN_PROCESS", ""), ("IN_PROCESS", "REJECTED",
                                                              "not open")]


def test_hold_is_stopped_with_a_reason_from_either_state() -> None:
    a, b = Substrate("A", "L", 1), Substrate("B", "L", 2)
    a.hold(reason="held for disposition: queue time")
    b.start()
    b.hold(reason="held for disposition: tool down")
    assert a.state == b.state == "STOPPED" and a.held
    assert "queue time" in a.data.reason


@pytest.mark.parametrize("trigger", ["complete", "abort", "reject"])
def test_processing_outcomes_need_in_process(trigger: str) -> None:
    w = Substrate("W", "L", 1)
    with pytest.raises(MachineError):
        getattr(w, trigger)()


def test_final_states_do_not_move() -> None:
    w = Substrate("W", "L", 1)
    w.start()
    w.complete()
    for trig in ("start", "hold", "abort", "lose"):
        with pytest.raises(MachineError):
            getattr(w, trig)()


def test_transitions_are_journaled_and_restored_with_set_state(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    j.add_lot("L", "F", [(1, "W")])

    def save(w: Substrate, s: str, d: str, r: str) -> None:
        j.wafer_transition(w.wafer_id, s, d, r, w.data_dict())

    w = Substrate("W", "L", 1, listener=save)
    w.start()
    w.data.developed = True
    w.hold(reason="held for disposition: x")
    heard: list[str] = []
    (wid, slot, state, data), = j.wafer_rows("L")
    r = Substrate(wid, "L", slot, listener=lambda *a: heard.append("x"))
    r.restore(state, data)
    assert r.state == "STOPPED" and r.data.developed and r.data.reason.endswith("x")
    assert heard == []  # set_state runs no callbacks
    assert j.transitions("W") == [("NEEDS_PROCESSING", "IN_PROCESS", ""),
                                  ("IN_PROCESS", "STOPPED", "held for disposition: x")]


def test_data_dict_is_what_asdict_gives_and_a_copy() -> None:
    """The journal's copy of a wafer's data: every field, and ``ran`` not shared."""
    from dataclasses import asdict

    w = Substrate("W1", "L1", 1)
    w.data.ran, w.data.dose, w.data.step = {"etch": "etcher-2"}, 320.0, "etch"
    out = w.data_dict()
    assert out == asdict(w.data)
    out["ran"]["etch"] = "etcher"
    assert w.data.ran == {"etch": "etcher-2"}
