"""A lot started through E87 + E40 + E94 by a secsgem host over HSMS, on the simulators.

The host verifies the carrier (S3F17), creates a process job on two of its slots
(S16F11) and a control job for it (S14F9), starts the control job (S16F27), and the lot
runs to PROCESS_COMPLETE. Checked where the truth is: the journal's lot and job
transitions, the tools' own job counts, and the events the host received, in order.
A carrier whose slot map the host has wrong is held with its reason and an event, and
nothing of it is processed.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sequencer.faces.gem.material import PJ_STATE_CODES
from sequencer.faces.gem.tables import JOB_EVENTS, JOB_QUEUED
from simulators.runner import SimThread
from tests.gem.gemkit import host_transitions, journal_transitions
from tests.hil.flowkit import job_transitions, journal_lots, scpi, wait_for

from .gem300kit import (
    RPT_CARRIER,
    TABLES,
    bench,
    ceid,
    cj_command,
    create_cj,
    create_pj,
    proceed,
    vid,
)

SCALE = 2000.0
pytestmark = [pytest.mark.timeout(120), pytest.mark.sim_time_scale(SCALE)]
WAFERS = ["G01", "G02"]


def _subsequence(wanted: list[int], got: list[int]) -> bool:
    it = iter(got)
    return all(any(g == w for g in it) for w in wanted)


def test_carrier_process_job_control_job_run_a_lot(tmp_path: Path, sims: SimThread) -> None:
    with bench(tmp_path, sims, {"CAR1": WAFERS}) as b:
        host = b.host
        assert proceed(host, "CAR1", [1, 2]) == {"CAACK": 0, "ERRORS": []}
        assert create_pj(host, "PJ1", "CAR1", [1, 2], "FLOW-Q")["STATUS"] == {
            "ACKA": True, "ERRORS": []}
        ack = create_cj(host, "CJ1", ["PJ1"], ["CAR1"])
        assert ack["STATUS"] == {"OBJACK": 0, "ERRORS": []}, ack
        assert httpx.get(f"{b.daemon.url}/lots").json() == []  # nothing runs before CJStart
        assert cj_command(host, "CJ1", 1) == {"ACKA": True, "STATUS": {"ERRCODE": 0,
                                                                         "ERRTEXT": ""}}

        def lot_done() -> bool:
            r = httpx.get(f"{b.daemon.url}/lots/PJ1")
            return r.status_code == 200 and r.json()["state"] == "PROCESS_COMPLETE"
        wait_for(lot_done, 60.0, "PJ1 to complete", interval_s=0.1)
        done = ceid("ControlJob.EXECUTING.COMPLETED")
        wait_for(lambda: done in host.inbox.ceids(), 10.0, "the control job's completion")

        assert journal_lots(b.db)["PJ1"] == "PROCESS_COMPLETE"
        for w in WAFERS:  # the tools' own records: each wafer exposed once, etched once
            assert scpi(sims, "exposure", f"JOB:COUN? {w}") == "1"
            assert scpi(sims, "etcher", f"JOB:COUN? {w}") == "1"
        got = host.inbox.ceids()
        job = [ceid(f"Job.{t}") for t in _job_names(job_transitions(b.db, "PJ1"))]
        wanted = [ceid("Carrier.Created"), ceid("Carrier.ID.ID_NOT_READ.WAITING_FOR_HOST"),
                  ceid("Carrier.ID.WAITING_FOR_HOST.ID_VERIFICATION_OK"),
                  ceid("Carrier.SlotMap.SLOT_MAP_NOT_READ.WAITING_FOR_HOST"),
                  ceid("Carrier.SlotMap.WAITING_FOR_HOST.SLOT_MAP_VERIFICATION_OK"),
                  ceid("PRJob.Created"), ceid("ControlJob.Created"),
                  ceid("ControlJob.QUEUED.SELECTED"),
                  ceid("ControlJob.SELECTED.WAITING_FOR_START"),
                  ceid("ControlJob.WAITING_FOR_START.EXECUTING"),
                  ceid("Carrier.Access.NOT_ACCESSED.IN_ACCESS"), ceid(JOB_QUEUED), *job,
                  ceid("Carrier.Access.IN_ACCESS.CARRIER_COMPLETE"), done]
        assert _subsequence(wanted, got), f"{wanted}\n{got}"
        # the job events the host got are the journal's transitions, in the journal's order
        job_ceids = {ceid(f"Job.{t}") for t in _job_names(job_transitions(b.db, "PJ1"))}
        assert [c for c in got if c in job_ceids] == job
        # every substrate and job transition of the lot, as the journal has them, in order
        assert host_transitions(host) == journal_transitions(b.db, {"PJ1", *WAFERS})
        # S16F9: every state the job entered after its lot was made, with E40's codes
        states = [d for _, d in job_transitions(b.db, "PJ1")]
        assert b.prjob_events == [("PJ1", PJ_STATE_CODES[s], s) for s in states]
        last = [e for e in host.inbox.events if e.ceid == done][-1]
        assert last.reports[0][1] == ["CJ1", "COMPLETED", "normal"]
        carrier = [e for e in host.inbox.events
                   if e.ceid == ceid("Carrier.Access.IN_ACCESS.CARRIER_COMPLETE")][-1]
        assert carrier.reports == [(RPT_CARRIER, ["CAR1", "ID_VERIFICATION_OK",
                                                  "SLOT_MAP_VERIFICATION_OK",
                                                  "CARRIER_COMPLETE", ""])]
        again = create_pj(host, "PJ1B", "CAR1", [1], "FLOW-Q")  # its wafers are done
        assert again["STATUS"]["ERRORS"][0]["ERRTEXT"].startswith("carrier CAR1 is done")


def _job_names(transitions: list[tuple[str, str]]) -> list[str]:
    return [JOB_EVENTS[(s, d)].removeprefix("Job.") for s, d in transitions
            if (s, d) in JOB_EVENTS]


def test_a_wrong_slot_map_holds_the_carrier_and_nothing_runs(tmp_path: Path,
                                                             sims: SimThread) -> None:
    with bench(tmp_path, sims, {"CAR2": WAFERS}) as b:
        host = b.host
        ack = proceed(host, "CAR2", [1, 2, 3])  # the lot has wafers in slots 1 and 2 only
        assert ack["CAACK"] == 6
        assert [e["ERRTEXT"] for e in ack["ERRORS"]] == [
            "slot 3: the host says CORRECTLY_OCCUPIED, lot CAR2 has it EMPTY"]
        held = ceid("Carrier.Held")
        wait_for(lambda: held in host.inbox.ceids(), 10.0, "Carrier.Held")
        event = [e for e in host.inbox.events if e.ceid == held][0]
        assert event.reports == [(RPT_CARRIER, [
            "CAR2", "ID_VERIFICATION_OK", "SLOT_MAP_VERIFICATION_FAILED", "NOT_ACCESSED",
            "slot 3: the host says CORRECTLY_OCCUPIED, lot CAR2 has it EMPTY"])]
        assert ceid("Carrier.SlotMap.WAITING_FOR_HOST.SLOT_MAP_VERIFICATION_FAILED") \
            in host.inbox.ceids()
        alid = TABLES.alarm_by_name["CarrierHeld"].alid
        wait_for(lambda: any(a[2] == alid and a[1] & 0x80 for a in host.inbox.alarms), 10.0,
                 "the CarrierHeld alarm set")

        svs = [vid("CarriersHeld"), vid("CarriersAtPorts")]
        assert host.request(1, 3, svs) == ["CAR2", "CAR2"]
        pj = create_pj(host, "PJ2", "CAR2", [1, 2], "FLOW-Q")
        assert pj["STATUS"]["ACKA"] is False
        assert any("carrier CAR2 is held" in e["ERRTEXT"] for e in pj["STATUS"]["ERRORS"])
        cj = create_cj(host, "CJ2", ["PJ2"], ["CAR2"], auto=True)
        assert cj["STATUS"]["OBJACK"] == 1
        assert proceed(host, "CAR2", [1, 2])["CAACK"] == 5  # held: proceeding is refused

        # the host's correction: re-created with the right map, verified, the alarm cleared
        assert proceed(host, "CAR2", [1, 2], action="CarrierReCreate") == {"CAACK": 0,
                                                                            "ERRORS": []}
        wait_for(lambda: any(a[2] == alid and not a[1] & 0x80 for a in host.inbox.alarms),
                 10.0, "the CarrierHeld alarm cleared")
        wait_for(lambda: host.inbox.ceids().count(ceid(
            "Carrier.SlotMap.WAITING_FOR_HOST.SLOT_MAP_VERIFICATION_OK")) == 1, 10.0,
            "the re-created carrier verified")
        assert ceid("Carrier.ReCreated") in host.inbox.ceids()
        assert proceed(host, "CAR2", None, action="CancelCarrier") == {"CAACK": 0,
                                                                        "ERRORS": []}
        assert host.request(1, 3, svs) == ["", ""]
        gone = create_pj(host, "PJ2", "CAR2", [1, 2], "FLOW-Q")
        assert "carrier CAR2 is canceled" in gone["STATUS"]["ERRORS"][0]["ERRTEXT"]
        assert httpx.get(f"{b.daemon.url}/lots").json() == []
        assert "PJ2" not in journal_lots(b.db)
        for w in WAFERS:
            assert scpi(sims, "exposure", f"JOB:COUN? {w}") == "0"
            assert scpi(sims, "etcher", f"JOB:COUN? {w}") == "0"
