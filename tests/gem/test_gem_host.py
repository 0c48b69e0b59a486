"""A fab host (secsgem's GemHostHandler, active HSMS) drives `viaform daemon` on the
simulators over loopback: establish communications, names and values, ECs, reports,
a lot started with S2F41 START and run to PROCESS_COMPLETE, a tool alarm as S5F1, LOCAL.

Everything the host receives is checked where the truth is: the journal's transitions
(every substrate and job event, in order, nothing missing or extra), the wafers'
journaled results (the DVs of the PROCESSED event), the simulated world (every wafer
processed exactly once and back in the stocker) and the tools' own job counters.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from secsgem.secs.variables import Array, String
from typer.testing import CliRunner

from sequencer.faces.cli import app
from sequencer.faces.gem.variables import parse_clock
from simulators.runner import SimThread
from tests.hil.flowkit import assert_world_sound, scpi, tool_state, wait_for, world_snapshot
from tests.hil.test_daemon_engine import quick_flow
from tests.sqlitekit import connected

from .gemkit import (
    HEADERS,
    SCALE,
    TOOLS,
    T,
    V,
    define_reports,
    gem_daemon,
    gem_host,
    gem_tools_yaml,
    host_transitions,
    journal_transitions,
    lot_state,
)

WAFERS = ["G01", "G02", "G03"]


def start_params(lot: str, ppid: str, wafers: str) -> dict[str, Any]:
    return {"RCMD": "START", "PARAMS": [{"CPNAME": "LOTID", "CPVAL": lot},
                                        {"CPNAME": "PPID", "CPVAL": ppid},
                                        {"CPNAME": "WAFERIDS", "CPVAL": wafers}]}


def journal_data(db: Path, wafer: str) -> dict[str, Any]:
    with connected(f"file:{db}?mode=ro", uri=True) as con:
        row = con.execute("SELECT data FROM wafers WHERE wafer_id=?", (wafer,)).fetchone()
    return dict(json.loads(row[0]))


def gem_cli(base: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["gem", *args, "--daemon", base])


@pytest.mark.timeout(150)
def test_a_host_runs_a_lot_and_sees_every_event_in_order(tmp_path: Path) -> None:
    recipes, db = quick_flow(tmp_path), tmp_path / "journal.db"
    with SimThread(time_scale=SCALE, seed=5) as sims:
        tools = gem_tools_yaml(tmp_path, sims, db)
        with gem_daemon(tools, db, recipes, "host") as d, gem_host(d.gem_port) as host:
            assert [t["tool"] for t in httpx.get(f"{d.url}/tools").json()] == TOOLS
            # establish communications; ONLINE REMOTE from tools.yaml: S1F17 is "already"
            assert host.request(1, 1) == ["viaform-test", "9"]
            assert host.request(1, 17) == 2
            names = {sv["SVID"]: sv["SVNAME"] for sv in host.request(1, 11, [])}
            for required in ("Clock", "ControlState", "PreviousControlState", "EventsEnabled",
                             "AlarmsEnabled", "AlarmsSet", "SpoolCountActual",
                             "SpoolCountTotal", "SpoolFullTime", "SpoolStartTime"):
                assert required in names.values(), required
            per_tool = [f"{t}.{s}" for t in TOOLS for s in (
                "State", "E10State", "ChamberTemperature", "O2", "Pressure", "RFPower",
                "CurrentLot", "CurrentWafer")]
            assert set(per_tool) <= set(names.values())
            def gauges() -> list[Any] | None:  # read from the tools' status polls
                values = host.request(1, 3, [V["oven.ChamberTemperature"],
                                             V["etcher.Pressure"], V["exposure.O2"]])
                return values if values[0] != [] and values[1] != [] else None
            oven_temp, etch_pressure, no_o2 = wait_for(gauges, 10.0, "the gauges", 0.1)
            assert oven_temp == pytest.approx(sims.tools["oven"].phys.chamber_c, abs=5.0)
            assert isinstance(etch_pressure, float) and no_o2 == []  # the cell has no O2 gauge
            clock, control, oven_state = host.request(1, 3, [V["Clock"], V["ControlState"],
                                                             V["oven.State"]])
            assert len(clock) == 16 and clock.isdigit() and control == 5
            tools_view = {t["tool"]: t for t in httpx.get(f"{d.url}/tools").json()}
            assert oven_state == tools_view["oven"]["state"]
            # ECs: one bad value refuses the whole S2F15, nothing changes; a good one is kept
            ecid = V["QueueTimeCureToEtchS"]
            before = host.request(2, 13, [ecid])
            assert host.request(2, 15, [{"ECID": ecid, "ECV": 7200.0},
                                        {"ECID": V["TimeFormat"], "ECV": 9}]) == 3
            assert host.request(2, 13, [ecid]) == before
            assert host.request(2, 15, [{"ECID": ecid, "ECV": 7200.0}]) == 0
            assert host.request(2, 13, [ecid]) == [7200.0]
            # MaxBatchSize caps the cure recipe's 25: GL1's three wafers cure in two batches
            assert host.request(2, 15, [{"ECID": V["MaxBatchSize"], "ECV": 26}]) == 3
            assert host.request(2, 15, [{"ECID": V["MaxBatchSize"], "ECV": 2}]) == 0
            audit = httpx.get(f"{d.url}/audit", params={"tool": "gem"}).json()
            assert any(a["command"] == "set EC" and a["args"]["value"] == 7200.0 for a in audit)
            assert any(a["command"] == "set EC refused" for a in audit)
            define_reports(host, T)
            # START: a bad PPID is HCACK 3 naming it, and creates nothing
            bad = host.request(2, 41, start_params("GL1", "NO-SUCH-FLOW", ",".join(WAFERS)))
            assert bad["HCACK"] == 3 and [p["CPNAME"] for p in bad["PARAMS"]] == ["PPID"]
            assert lot_state(d.url, "GL1") is None
            wait_for(lambda: any("NO-SUCH-FLOW" in t for t in host.inbox.terminal), 5.0,
                     "the refusal as S10 text", interval_s=0.02)
            shown = gem_cli(d.url, "messages")
            assert shown.exit_code == 0 and "NO-SUCH-FLOW" in shown.output, shown.output
            ok = host.request(2, 41, start_params("GL1", "FLOW-Q", ",".join(WAFERS)))
            assert ok == {"HCACK": 4, "PARAMS": []}
            # the planner's ETA, as the host reads it: the same instant as /lots says
            def eta_sv() -> float | None:
                text = host.request(1, 3, [V["LotETAs"]])[0]
                pairs = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
                return parse_clock(pairs["GL1"]) if "GL1" in pairs else None
            eta = wait_for(eta_sv, 15.0, "GL1's ETA in the LotETAs SV", 0.1)
            api_eta = next(lt["eta"] for lt in httpx.get(f"{d.url}/lots").json()
                           if lt["lot_id"] == "GL1")
            assert api_eta is not None and abs(eta - api_eta) < 60.0  # a re-plan may move it
            again = host.request(2, 41, start_params("GL1", "FLOW-Q", "X1"))
            assert again["HCACK"] == 3 and again["PARAMS"][0]["CPNAME"] == "LOTID"
            done = T.event_by_name["Job.finish.PROCESSING.PROCESS_COMPLETE"].ceid
            wait_for(lambda: done in host.inbox.ceids(), 60.0, "PROCESS_COMPLETE",
                     interval_s=0.05)
            assert lot_state(d.url, "GL1") == "PROCESS_COMPLETE"
            subjects = {"GL1", *WAFERS}
            wait_for(lambda: host_transitions(host) == journal_transitions(db, subjects),
                     5.0, "the host's events to match the journal", interval_s=0.05)
            # the wafers' results, as the PROCESSED event carried them, are the journal's
            results = {v[0]: v for e in host.inbox.events for r, v in e.reports if r == 3}
            assert set(results) == set(WAFERS)
            for wafer, values in results.items():
                data = journal_data(db, wafer)
                assert values[1] == pytest.approx(data["depth_um"])
                assert values[4] == pytest.approx(data["etch_time_s"])
                assert values[6] is True and data["open"] is True
            world = world_snapshot(sims)
            assert_world_sound(world, WAFERS)
            assert all(scpi(sims, "exposure", f"JOB:COUN? {w}") == "1" for w in WAFERS)
            batches = [world["wafers"][w]["cure_batches"] for w in WAFERS]  # the oven's own
            assert all(len(b) == 1 for b in batches), batches
            assert sorted(Counter(b[0] for b in batches).values()) == [1, 2], batches
            # a latched tool alarm: viaform holds the cell at the next lot, the host hears S5F1
            sims.call(sims.faults["exposure"].inject, "lamp_fail")
            wait_for(lambda: tool_state(sims, "exposure") == "ALARM", 10, "the lamp alarm")
            sims.call(sims.faults["exposure"].clear, "lamp_fail")
            enhanced = host.request(2, 49, {  # S2F49: WAFERIDS as a list
                "DATAID": 1, "OBJSPEC": "", "RCMD": "START", "PARAMS": [
                    {"CPNAME": "LOTID", "CEPVAL": "GL2"}, {"CPNAME": "PPID", "CEPVAL": "FLOW-Q"},
                    {"CPNAME": "WAFERIDS", "CEPVAL": Array(String, ["G04"])}]})
            assert enhanced == {"HCACK": 4, "PARAMS": []}
            held = T.alarm_by_name["exposure.TOOL_HELD"].alid
            wait_for(lambda: any(a[2] == held and a[1] & 0x80 for a in host.inbox.alarms),
                     30.0, "S5F1 set for exposure.TOOL_HELD", interval_s=0.05)
            assert held in host.request(1, 3, [V["AlarmsSet"]])[0]
            assert host.request(1, 3, [V["exposure.Held"]]) == [True]
            alarm = next(a for a in httpx.get(f"{d.url}/alarms?active=true").json()
                         if a["tool"] == "exposure")
            r = httpx.post(f"{d.url}/alarms/{alarm['id']}/ack", headers=HEADERS)
            assert r.status_code == 200, r.text
            wait_for(lambda: any(a[2] == held and not a[1] & 0x80 for a in host.inbox.alarms),
                     15.0, "S5F1 cleared", interval_s=0.05)
            wait_for(lambda: lot_state(d.url, "GL2") == "PROCESS_COMPLETE", 60.0, "GL2 done",
                     interval_s=0.05)
            # LOCAL (the operator, audited): remote commands get HCACK 2, queries still work
            result = gem_cli(d.url, "local")
            assert result.exit_code == 0 and "ONLINE_LOCAL" in result.output, result.output
            refused = host.request(2, 41, start_params("GL3", "FLOW-Q", "G05"))
            assert refused["HCACK"] == 2 and lot_state(d.url, "GL3") is None
            assert host.request(1, 3, [V["ControlState"], V["PreviousControlState"]]) == [4, 5]
            assert gem_cli(d.url, "local").exit_code == 1  # already local: refused, named
            assert gem_cli(d.url, "remote").exit_code == 0
            assert host.request(1, 3, [V["ControlState"]]) == [5]
            local = T.event_by_name["ControlStateLocal"].ceid
            assert local in host.inbox.ceids()
            # OFFLINE: the host's messages get SxF0; ONLINE asks the host (S1F1) first
            assert gem_cli(d.url, "offline").exit_code == 0
            assert host.request(1, 3, [V["ControlState"]]) == "abort"
            online = gem_cli(d.url, "online")
            assert online.exit_code == 0 and "ONLINE_REMOTE" in online.output, online.output
            status = gem_cli(d.url, "status")
            assert "ONLINE_REMOTE (communicating, host 127.0.0.1)" in status.output
            # previous: EQUIPMENT OFFLINE (ATTEMPT ONLINE passed within the same switch)
            assert host.request(1, 3, [V["ControlState"], V["PreviousControlState"]]) == [5, 1]
            audit = httpx.get(f"{d.url}/audit", params={"tool": "gem"}).json()
            switches = sorted((a["id"], a["command"], a["outcome"]) for a in audit
                              if a["command"] in ("local", "remote"))
            assert [(c, o) for _, c, o in switches] == [
                ("local", "ok"), ("local", "refused"), ("remote", "ok")]
