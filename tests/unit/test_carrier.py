"""The E87 carrier: its three state machines, slot maps, holds, persistence; load ports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transitions import MachineError

from sequencer.states.carrier import (
    CAPACITY,
    Carrier,
    LoadPort,
    compare_slot_maps,
    slot_map_of,
)


def test_each_machine_moves_on_its_own_and_the_listener_names_it() -> None:
    heard: list[tuple[str, str, str]] = []
    c = Carrier("C1", 1, "L1", {2: "W2", 1: "W1"},
                listener=lambda c, m, s, d: heard.append((m, s, d)))
    assert (c.id_status, c.slot_map_status, c.accessing_status) == (
        "ID_NOT_READ", "SLOT_MAP_NOT_READ", "NOT_ACCESSED")
    c.id_read()
    c.id_verified()
    c.map_verified()
    assert c.verified and not c.held
    c.access_begin()
    c.access_complete()
    assert heard == [("id", "ID_NOT_READ", "WAITING_FOR_HOST"),
                     ("id", "WAITING_FOR_HOST", "ID_VERIFICATION_OK"),
                     ("slot_map", "SLOT_MAP_NOT_READ", "SLOT_MAP_VERIFICATION_OK"),
                     ("access", "NOT_ACCESSED", "IN_ACCESS"),
                     ("access", "IN_ACCESS", "CARRIER_COMPLETE")]
    assert list(c.content) == [1, 2]


def test_a_failed_verification_is_final_for_that_machine() -> None:
    c = Carrier("C1", 1, "L1", {1: "W1"})
    c.map_failed()
    c.hold("slot 2: …")
    assert not c.verified and c.held
    with pytest.raises(MachineError):
        c.map_verified()
    with pytest.raises(MachineError):
        c.access_complete()  # never accessed


def test_slot_map_of_a_lot_and_every_difference_named() -> None:
    assert slot_map_of([1, 3], capacity=4) == [3, 1, 3, 1]
    lines = compare_slot_maps([3, 1, 3, 1], [3, 3, 1, 1], "lot L1")
    assert lines == ["slot 2: the host says CORRECTLY_OCCUPIED, lot L1 has it EMPTY",
                     "slot 3: the host says EMPTY, lot L1 has it CORRECTLY_OCCUPIED"]
    assert compare_slot_maps([3, 1], [3, 1, 1], "lot L1") == [
        "the host's slot map has 3 slots, the carrier 2"]


@given(st.sets(st.integers(1, CAPACITY)), st.sets(st.integers(1, CAPACITY)))
def test_maps_differ_exactly_in_the_symmetric_difference(a: set[int], b: set[int]) -> None:
    lines = compare_slot_maps(slot_map_of(sorted(a)), slot_map_of(sorted(b)), "lot")
    assert [int(line.split(":")[0].split()[1]) for line in lines] == sorted(a ^ b)


def test_json_round_trip() -> None:
    c = Carrier("C1", 2, "L1", {1: "W1", 5: "W5"})
    c.id_verified()
    c.map_failed()
    c.hold("slot 5: the host says EMPTY, lot L1 has it CORRECTLY_OCCUPIED")
    again = Carrier.from_json(c.to_json())
    assert again.to_json() == c.to_json()
    assert again.slot_map_status == "SLOT_MAP_VERIFICATION_FAILED" and again.held


def test_load_port_access_mode() -> None:
    heard: list[tuple[str, str]] = []
    port = LoadPort(1, listener=lambda p, s, d: heard.append((s, d)))
    assert port.access_mode == "MANUAL"
    assert port.change_to("AUTO") and not port.change_to("AUTO")
    assert port.change_to("MANUAL")
    assert heard == [("MANUAL", "AUTO"), ("AUTO", "MANUAL")]
