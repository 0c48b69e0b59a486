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

from sequencer.faces.gem.tables import JOB_EVENTS, JOB_QUEUED
from simulators.runner import SimThread
from tests.hil.flowkit import job_transitions, journal_lots, scpi, wait_for

from .gem300kit import RPT_CARRIER, bench, ceid, cj_command, create_cj, create_pj, proceed

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
        last = [e for e in host.inbox.events if e.ceid == done][-1]
        assert last.reports[0][1] == ["CJ1", "COMPLETED", "normal"]
        carrier = [e for e in host.inbox.events
                   if e.ceid == ceid("Carrier.Access.IN_ACCESS.CARRIER_COMPLETE")][-1]
        assert carrier.reports == [(RPT_CARRIER, ["CAR1", "ID_VERIFICATION_OK",
                                                  "SLOT_MAP_VERIFICATION_OK",
                                                  "CARRIER_COMPLETE", ""])]


def _job_names(transitions: list[tuple[str, str]]) -> list[str]:
    return [JOB_EVENTS[(s, d)].removeprefix("Job.") for s, d in transitions
            if (s, d) in JOB_EVENTS]
