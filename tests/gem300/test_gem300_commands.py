"""The host's E40/E94/E87 commands against the daemon on the simulators, and what a
restart keeps.

Refusals change nothing and say why (ONLINE LOCAL, a taken slot, a command the state
does not allow); a control job with StartMethod auto and a process job waiting for
PRJobStart; CJPause/CJResume/CJAbort reach the lot (the journal's job states), the
carrier's access ends CARRIER_STOPPED; dequeue and CJStop of a job that never ran.
After the daemon is killed and started again on the same journal, the carrier, the
process job and the control job are there as they were, and CJStart runs the lot.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE
from simulators.runner import SimThread
from tests.hil.flowkit import journal_lots, scpi, wait_for

from .gem300kit import bench, ceid, cj_command, create_cj, create_pj, proceed, vid

CLI = {CLIENT_HEADER: CLIENT_VALUE}  # what the viaform CLI sends (auth.py)
pytestmark = [pytest.mark.timeout(120), pytest.mark.sim_time_scale(300.0)]


def _lot_state(url: str, lot: str) -> str | None:
    r = httpx.get(f"{url}/lots/{lot}")
    return str(r.json()["state"]) if r.status_code == 200 else None


def _acka(reply: dict[str, object]) -> object:
    status = reply["STATUS"]
    assert isinstance(status, dict)
    return status["ACKA"]


def test_commands_and_refusals(tmp_path: Path, sims: SimThread) -> None:
    with bench(tmp_path, sims, {"CAR3": ["H01", "H02"], "CAR4": ["K01"]}) as b:
        host, url = b.host, b.daemon.url
        httpx.post(f"{url}/gem/local", headers=CLI).raise_for_status()
        assert proceed(host, "CAR3", [1, 2])["CAACK"] == 2
        assert _acka(create_pj(host, "PJ3", "CAR3", [1, 2], "FLOW-Q")) is False
        httpx.post(f"{url}/gem/remote", headers=CLI).raise_for_status()
        assert ceid("Carrier.Created") not in host.inbox.ceids()

        assert proceed(host, "CAR3", [1, 2])["CAACK"] == 0
        modes = [vid("LoadPort1AccessMode"), vid("LoadPort2AccessMode")]
        assert host.request(3, 27, {"ACCESSMODE": 1, "PTN": [1]}) == {"CAACK": 0, "ERRORS": []}
        bad = host.request(3, 27, {"ACCESSMODE": 0, "PTN": [1, 9]})
        assert bad["CAACK"] == 3 and bad["ERRORS"][0]["PTN"] == 9
        assert host.request(1, 3, modes) == [1, 0]  # the refused change changed nothing
        space = host.request(16, 21)
        assert host.request(1, 3, [vid("PRJobSpace")]) == [space]
        assert _acka(create_pj(host, "PJ3", "CAR3", [1, 2], "FLOW-Q", auto=False)) is True
        assert host.request(16, 21) == space - 1
        taken = create_pj(host, "PJ3B", "CAR3", [2], "FLOW-Q")
        assert [e["ERRTEXT"] for e in taken["STATUS"]["ERRORS"]] == [  # type: ignore[index]
            "slot 2 is process job PJ3's"]
        nope = create_pj(host, "PJ3C", "CAR3", [1], "FLOW-NONE")
        texts = [e["ERRTEXT"] for e in nope["STATUS"]["ERRORS"]]  # type: ignore[index]
        assert texts[0] == "slot 1 is process job PJ3's" and "FLOW-NONE" in texts[1], texts

        assert create_cj(host, "CJ3", ["PJ3"], ["CAR3"], auto=True)["STATUS"]["OBJACK"] == 0
        assert host.request(1, 3, [vid("CtrlJobsActive"), vid("PRJobsActive")]) == [
            "CJ3", "PJ3"]
        waiting = ceid("PRJob.WaitingForStart")
        wait_for(lambda: waiting in host.inbox.ceids(), 10.0, "PJ3 waiting for start")
        assert ceid("ControlJob.SELECTED.EXECUTING") in host.inbox.ceids()
        assert _lot_state(url, "PJ3") is None  # no lot until PRJobStart
        pause = host.request(16, 5, {"DATAID": 0, "PRJOBID": "PJ3", "PRCMDNAME": "PAUSE",
                                     "PARAMETERS": []})
        assert pause["STATUS"]["ACKA"] is False
        assert pause["STATUS"]["ERRORS"][0]["ERRCODE"] == 17
        start = host.request(16, 5, {"DATAID": 0, "PRJOBID": "PJ3", "PRCMDNAME": "START",
                                     "PARAMETERS": []})
        assert start["STATUS"] == {"ACKA": True, "ERRORS": []}
        wait_for(lambda: _lot_state(url, "PJ3") == "PROCESSING", 20.0, "PJ3 processing")

        assert cj_command(host, "CJ3", 2)["ACKA"] is True  # CJPause
        wait_for(lambda: _lot_state(url, "PJ3") == "PAUSED", 30.0, "the lot paused")
        assert cj_command(host, "CJ3", 2)["ACKA"] is False  # paused already
        assert cj_command(host, "CJ3", 3)["ACKA"] is True  # CJResume
        wait_for(lambda: _lot_state(url, "PJ3") == "PROCESSING", 30.0, "the lot resumed")
        assert cj_command(host, "CJ3", 7)["ACKA"] is True  # CJAbort
        wait_for(lambda: _lot_state(url, "PJ3") == "ABORTED", 30.0, "the lot aborted")
        stopped = ceid("Carrier.Access.IN_ACCESS.CARRIER_STOPPED")
        done = ceid("ControlJob.EXECUTING.COMPLETED")
        wait_for(lambda: done in host.inbox.ceids(), 10.0, "CJ3 completed")
        got = host.inbox.ceids()
        assert got.index(stopped) < got.index(done)
        assert [e for e in host.inbox.events if e.ceid == done][-1].reports[0][1] == [
            "CJ3", "COMPLETED", "aborted"]
        assert journal_lots(b.db)["PJ3"] == "ABORTED"

        assert proceed(host, "CAR4", [1])["CAACK"] == 0
        lot = {"lot": {"lot_id": "X1", "flow": "FLOW-Q", "wafers": [{"slot": 1, "id": "K01"}]}}
        httpx.post(f"{url}/lots", json=lot, headers=CLI).raise_for_status()
        busy = create_pj(host, "PJ4", "CAR4", [1], "FLOW-Q")
        assert [e["ERRTEXT"] for e in busy["STATUS"]["ERRORS"]] == [  # type: ignore[index]
            "wafer K01 (slot 1) is in unfinished lot X1"]
        httpx.post(f"{url}/lots/X1/abort", headers=CLI).raise_for_status()
        wait_for(lambda: _lot_state(url, "X1") == "ABORTED", 30.0, "X1 aborted")
        exposed = scpi(sims, "exposure", "JOB:COUN? K01")
        assert _acka(create_pj(host, "PJ4", "CAR4", [1], "FLOW-Q")) is True
        deq = host.request(16, 17, ["PJ4", "NOPE"])
        assert deq["PRJOBID"] == ["PJ4"] and deq["STATUS"]["ACKA"] is False
        assert _acka(create_pj(host, "PJ5", "CAR4", [1], "FLOW-Q")) is True
        assert create_cj(host, "CJ5", ["PJ5"], ["CAR4"])["STATUS"]["OBJACK"] == 0
        wait_for(lambda: ceid("ControlJob.SELECTED.WAITING_FOR_START") in
                 host.inbox.ceids()[got.index(done):], 10.0, "CJ5 waiting for start")
        assert cj_command(host, "CJ5", 4)["ACKA"] is False  # CJCancel: only a queued job
        assert cj_command(host, "CJ5", 6)["ACKA"] is True  # CJStop before it ran
        wait_for(lambda: ceid("ControlJob.WAITING_FOR_START.COMPLETED") in host.inbox.ceids(),
                 10.0, "CJ5 completed (stopped)")
        assert _lot_state(url, "PJ5") is None and "PJ5" not in journal_lots(b.db)
        assert scpi(sims, "exposure", "JOB:COUN? K01") == exposed  # CJ5 ran nothing


@pytest.mark.sim_time_scale(2000.0)
def test_a_restart_keeps_carriers_and_jobs(tmp_path: Path, sims: SimThread) -> None:
    lots = {"CAR6": ["M01"]}
    with bench(tmp_path, sims, lots) as b:
        assert proceed(b.host, "CAR6", [1])["CAACK"] == 0
        assert _acka(create_pj(b.host, "PJ6", "CAR6", [1], "FLOW-Q")) is True
        assert create_cj(b.host, "CJ6", ["PJ6"], ["CAR6"])["STATUS"]["OBJACK"] == 0
        wait_for(lambda: ceid("ControlJob.SELECTED.WAITING_FOR_START") in b.host.inbox.ceids(),
                 10.0, "CJ6 waiting for start")
    with bench(tmp_path, sims, lots, fresh=False) as b:  # killed, started on the journal
        assert proceed(b.host, "CAR6", [1])["CAACK"] == 5  # verified before the restart
        assert _acka(create_pj(b.host, "PJ6", "CAR6", [1], "FLOW-Q")) is False  # exists
        assert cj_command(b.host, "CJ6", 1)["ACKA"] is True  # CJStart, as it was left
        wait_for(lambda: _lot_state(b.daemon.url, "PJ6") == "PROCESS_COMPLETE", 90.0,
                 "PJ6 to complete")
        done = ceid("ControlJob.EXECUTING.COMPLETED")
        wait_for(lambda: done in b.host.inbox.ceids(), 10.0, "CJ6 completed")
        assert scpi(sims, "etcher", "JOB:COUN? M01") == "1"
