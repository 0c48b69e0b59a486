"""The SECS-II functions viaform adds to secsgem 0.3: encode → bytes → decode round trips
with secsgem's own classes, the E5 item formats on the wire, registration."""

from __future__ import annotations

from typing import Any

import pytest
import secsgem.secs  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from sequencer.faces.gem.streams_functions import FUNCTIONS, register
from sequencer.faces.gem.streams_items import any_value

ids = st.text(st.sampled_from("ABCXYZ019-_."), min_size=1, max_size=20)
errors = st.lists(st.fixed_dictionaries({"ERRCODE": st.integers(0, 100),
                                         "ERRTEXT": st.text("abc xyz:", max_size=40)}),
                  max_size=3)


def _round_trip(stream: int, function: int, value: Any) -> Any:
    cls = FUNCTIONS[(stream, function)]
    wire = cls(value).encode()
    back = cls()
    back.decode(wire)
    assert back.encode() == wire
    return back.get()


@given(ids, st.sampled_from(["ProceedWithCarrier", "CancelCarrier", "CarrierReCreate"]),
       st.integers(1, 4), st.lists(st.integers(0, 5), min_size=1, max_size=25))
def test_s3f17_carrier_action_round_trip(carrier: str, action: str, ptn: int,
                                         slot_map: list[int]) -> None:
    content = [[f"L{i}", f"W{i}"] for i in range(len(slot_map))]
    got = _round_trip(3, 17, {"DATAID": 7, "CARRIERACTION": action, "CARRIERSPEC": carrier,
                              "PTN": ptn, "ATTRIBUTES": [
                                  {"CATTRID": "SlotMap", "CATTRDATA": any_value(slot_map)},
                                  {"CATTRID": "ContentMap", "CATTRDATA": any_value(content)}]})
    assert got == {"DATAID": 7, "CARRIERACTION": action, "CARRIERSPEC": carrier, "PTN": ptn,
                   "ATTRIBUTES": [{"CATTRID": "SlotMap", "CATTRDATA": slot_map},
                                  {"CATTRID": "ContentMap", "CATTRDATA": content}]}


@given(st.integers(0, 6), errors)
def test_s3f18_and_s16f28_acknowledges(caack: int, errs: list[dict[str, Any]]) -> None:
    assert _round_trip(3, 18, {"CAACK": caack, "ERRORS": errs}) == {"CAACK": caack,
                                                                    "ERRORS": errs}
    status = errs[0] if errs else {"ERRCODE": 0, "ERRTEXT": ""}
    assert _round_trip(16, 28, {"ACKA": not errs, "STATUS": status}) == {
        "ACKA": not errs, "STATUS": status}


@given(st.integers(0, 1), st.lists(st.integers(1, 4), max_size=4))
def test_s3f27_f28_access_mode(mode: int, ports: list[int]) -> None:
    assert _round_trip(3, 27, {"ACCESSMODE": mode, "PTN": ports}) == {"ACCESSMODE": mode,
                                                                      "PTN": ports}
    errs = [{"PTN": p, "ERRCODE": 1, "ERRTEXT": "no such port"} for p in ports]
    assert _round_trip(3, 28, {"CAACK": 3, "ERRORS": errs})["ERRORS"] == errs


@given(ids, ids, st.lists(st.integers(1, 25), max_size=25, unique=True), st.booleans())
def test_s16f11_prjob_create_enh_round_trip(pj: str, carrier: str, slots: list[int],
                                            auto: bool) -> None:
    value = {"DATAID": 0, "PRJOBID": pj, "MF": 13,
             "CARRIERS": [{"CARRIERID": carrier, "SLOTID": slots}],
             "RECIPE": {"PRRECIPEMETHOD": 1, "RCPSPEC": "FLOW-A",
                        "PARAMETERS": [{"RCPPARNM": "x", "RCPPARVAL": 1.5}]},
             "PRPROCESSSTART": auto, "PRPAUSEEVENT": [310]}
    assert _round_trip(16, 11, value) == value


def test_s16f11_on_the_wire_is_e5s_structure() -> None:
    wire = FUNCTIONS[(16, 11)]({"DATAID": 1, "PRJOBID": "PJ1", "MF": 13, "CARRIERS": [
        {"CARRIERID": "C1", "SLOTID": [1]}], "RECIPE": {"PRRECIPEMETHOD": 1, "RCPSPEC": "F",
                                                         "PARAMETERS": []},
        "PRPROCESSSTART": True, "PRPAUSEEVENT": []}).encode()
    # L,7 · U1 1 · A "PJ1" · U1 13 · L,1 L,2 A "C1" L,1 U1 1 · L,3 U1 1 A "F" L,0 · BOOL 1 · L,0
    assert wire == bytes.fromhex("0107" "a50101" "4103504a31" "a5010d"
                                 "0101" "0102" "41024331" "0101" "a50101"
                                 "0103" "a50101" "410146" "0100" "250101" "0100")


@given(ids, st.sampled_from(["START", "PAUSE", "RESUME", "STOP", "ABORT", "CANCEL"]), errors)
def test_s16f5_f6_process_job_command(pj: str, cmd: str, errs: list[dict[str, Any]]) -> None:
    assert _round_trip(16, 5, {"DATAID": 0, "PRJOBID": pj, "PRCMDNAME": cmd,
                               "PARAMETERS": []})["PRCMDNAME"] == cmd
    ack = {"PRJOBID": pj, "STATUS": {"ACKA": not errs, "ERRORS": errs}}
    assert _round_trip(16, 6, ack) == ack
    assert _round_trip(16, 12, ack) == ack


@given(st.lists(ids, max_size=5), errors)
def test_s16f17_f18_dequeue(pjs: list[str], errs: list[dict[str, Any]]) -> None:
    assert _round_trip(16, 17, pjs) == pjs
    ack = {"PRJOBID": pjs, "STATUS": {"ACKA": not errs, "ERRORS": errs}}
    assert _round_trip(16, 18, ack) == ack


def test_s16f9_event_and_header_only_functions() -> None:
    value = {"PREVENTID": 4, "TIMESTAMP": "2026120114000000", "PRJOBID": "PJ1",
             "VARIABLES": [{"VID": 16001, "V": "PROCESS_COMPLETE"}]}
    assert _round_trip(16, 9, value) == value
    for sf in ((16, 10), (16, 21)):
        assert FUNCTIONS[sf]().encode() == b""
    assert _round_trip(16, 22, 12) == 12


@given(ids, st.integers(1, 8), st.sampled_from(["", "RemoveJobs", "SaveJobs"]))
def test_s16f27_control_job_command(cj: str, cmd: int, action: str) -> None:
    value = {"CTLJOBID": cj, "CTLJOBCMD": cmd, "PARAMETER": {"CPNAME": "Action",
                                                             "CPVAL": action}}
    assert _round_trip(16, 27, value) == value


def test_s14f9_f10_create_control_job() -> None:
    attrs = [{"ATTRID": "ObjID", "ATTRDATA": "CJ1"},
             {"ATTRID": "ProcessingCtrlSpec", "ATTRDATA": any_value([["PJ1", [], []]])},
             {"ATTRID": "CarrierInputSpec", "ATTRDATA": any_value(["C1"])},
             {"ATTRID": "StartMethod", "ATTRDATA": True}]
    got = _round_trip(14, 9, {"OBJSPEC": "", "OBJTYPE": "ControlJob", "ATTRIBUTES": attrs})
    assert got["ATTRIBUTES"][1]["ATTRDATA"] == [["PJ1", [], []]]
    assert got["ATTRIBUTES"][3]["ATTRDATA"] is True
    ack = {"OBJSPEC": "CJ1", "ATTRIBUTES": [], "STATUS": {"OBJACK": 1, "ERRORS": [
        {"ERRCODE": 7, "ERRTEXT": "unknown process job PJ9"}]}}
    assert _round_trip(14, 10, ack) == ack


@given(st.lists(st.text("abc XYZ 123:.", max_size=60), min_size=1, max_size=10))
def test_s10f5_multi_line_terminal(lines: list[str]) -> None:
    assert _round_trip(10, 5, {"TID": 0, "TEXT": lines}) == {"TID": 0, "TEXT": lines}
    assert _round_trip(10, 6, 0) == 0


def test_register_adds_ours_once_and_leaves_secsgems_alone() -> None:
    sf = secsgem.secs.functions.StreamsFunctions()
    s7f3 = sf.function(7, 3)
    assert sf.function(3, 17) is None and sf.function(16, 11) is None
    register(sf)
    register(sf)  # a second handler start on the same settings
    assert sf.function(3, 17) is FUNCTIONS[(3, 17)] and sf.function(7, 3) is s7f3
    assert sf.data_items.PRJOBID is not None
    with pytest.raises(ValueError, match="S10F5 is already defined"):
        clash = secsgem.secs.functions.StreamsFunctions()
        clash.update(type("SecsS10F05", (secsgem.secs.functions.SecsStreamFunction,),
                          {"_stream": 10, "_function": 5}))
        register(clash)
