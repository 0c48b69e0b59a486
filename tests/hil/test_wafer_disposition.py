"""Held wafers' disposition through the daemon, on the real engine and the simulators.

A purge that never reaches its O2 limit aborts the cure: the batch is held (STOPPED,
not cured) and the oven held for a person. Release and scrap are the engineer's
(another role: 403, nothing changed), all or nothing (a wafer not held: 409 naming it,
no listed wafer changes), and audited. A released wafer goes on to its next step: once
a technician acknowledges the oven, it is cured and etched once (the etcher's own
``JOB:COUNt?``); the scrapped one is never etched.
"""

from __future__ import annotations

import pytest

from simulators.runner import SimThread

from .flowkit import scpi
from .test_daemon_engine import SCALE, Daemon, daemon, eventually, lot_body  # noqa: F401

pytestmark = [pytest.mark.timeout(90), pytest.mark.sim_time_scale(SCALE)]


def _wafers(d: Daemon, lot_id: str) -> dict[str, dict]:
    return {w["wafer_id"]: w for w in d.lot(lot_id)["wafers"]}


def test_release_and_scrap_through_the_daemon(daemon: Daemon, sims: SimThread) -> None:  # noqa: F811
    d = daemon
    sims.call(sims.faults["oven"].inject, "o2_purge_fail")
    with d.client("operator") as op:
        assert op.post("/lots", json=lot_body("D1", ["D01", "D02"])).status_code < 300
    eventually(lambda: all(w["state"] == "STOPPED" for w in _wafers(d, "D1").values()),
               "the aborted batch held", timeout_s=40)
    sims.call(sims.faults["oven"].clear, "o2_purge_fail")  # the leak is found and fixed
    before = _wafers(d, "D1")
    assert "cure batch" in before["D01"]["reason"]

    body = {"wafers": ["D01"], "reason": "purge leak fixed; resin not yet cured"}
    for role in ("operator", "technician"):
        with d.client(role) as c:
            assert c.post("/wafers/release", json=body).status_code == 403
    with d.client("engineer") as eng:
        r = eng.post("/wafers/scrap", json={"wafers": ["D02"], "reason": "dropped"})
        assert r.status_code == 200 and r.json()[0]["state"] == "REJECTED", r.text
        r = eng.post("/wafers/release", json={"wafers": ["D01", "D02"], "reason": "x"})
        assert r.status_code == 409 and "D02 is REJECTED, not held" in r.text, r.text
        assert _wafers(d, "D1")["D01"]["state"] == "STOPPED"  # nothing changed
        assert eng.post("/wafers/release", json={"wafers": ["NOPE"], "reason": "x"}
                        ).status_code == 404
        r = eng.post("/wafers/release", json=body)
        assert r.status_code == 200, r.text
        view = r.json()[0]
        assert view["state"] == "IN_PROCESS" and view["reason"].startswith("released by eng")
        audit = eng.get("/audit", params={"tool": "wafer"}).json()
    outcomes = [(a["command"], a["outcome"], a["who"]) for a in audit]
    assert ("release", "ok", "eng") in outcomes and ("release", "refused", "eng") in outcomes
    assert ("scrap", "ok", "eng") in outcomes
    assert not any(a["who"] in ("ope", "tec") for a in audit if a["outcome"] == "ok")

    # the oven is held for a person (O2_HIGH seen): a technician acknowledges it
    with d.client("technician") as tech:
        held = [a for a in tech.get("/alarms").json()
                if a["tool"] == "oven" and a["kind"] == "TOOL_HELD" and a["active"]]
        assert held, "the oven was not held for a person"
        assert tech.post(f"/alarms/{held[0]['id']}/ack").status_code == 200
    eventually(lambda: _wafers(d, "D1")["D01"]["state"] == "PROCESSED", "D01 cured and etched",
               timeout_s=60)
    assert d.lot("D1")["state"] == "PROCESS_COMPLETE"
    assert scpi(sims, "etcher", "JOB:COUNt? D01") == "1"
    assert scpi(sims, "etcher", "JOB:COUNt? D02") == "0"
    assert scpi(sims, "exposure", "JOB:COUNt? D01") == "1"  # not exposed again
