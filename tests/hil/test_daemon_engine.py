"""The daemon on the real engine, driving the simulators, through a real uvicorn on 127.0.0.1:0.

What an operator and a technician rely on: a submitted lot runs to the end and its
progress comes back on the API and the event stream; pause holds back new steps and
resume lets them go; abort ends the lot without leaving a wafer on a tool; a manual
command that would change a tool is refused (409) while a job step runs there, queries
are not; take waits for the step to end and then no job step starts on the tool until
give; every manual command is audited; tokens and roles are enforced; a lost tool
connection raises an alarm and the daemon carries on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sequencer.faces.http.app import create_app
from sequencer.faces.http.auth import parse_env
from sequencer.faces.http.engine_line import EngineLine
from sequencer.faces.http.server import ServerThread
from sequencer.line.simhost import tools_config_for
from sequencer.states.substrate import FINAL as FINAL_WAFER
from sequencer.store.audit import AuditLog
from simulators.runner import SimThread
from tests.promtext import key, samples

from .flowkit import assert_world_sound, scpi, wait_for, world_snapshot, write_recipe

SCALE = 3000.0
TOKENS = {"operator": "op-token-0123456789abcdef", "technician": "tech-token-0123456789abc",
          "engineer": "eng-token-0123456789abcde"}
AUTH = parse_env(",".join(f"{role[:3]}:{role}:{tok}" for role, tok in TOKENS.items()))
FINAL_LOT = {"PROCESS_COMPLETE", "ABORTED", "STOPPED"}

pytestmark = [pytest.mark.timeout(60), pytest.mark.sim_time_scale(SCALE)]


def quick_flow(tmp_path: Path) -> Path:
    """``FLOW-Q``: FLOW-A with a shorter full cure (to 300 °C, ~1.7 h instead of ~3.5 h)."""
    recipes = tmp_path / "recipes"
    if not recipes.is_dir():
        import shutil

        shutil.copytree(Path(__file__).resolve().parents[2] / "configs" / "recipes", recipes)
    write_recipe(tmp_path, "cure", {
        "name": "CURE-Q", "batch_size": 25, "o2_limit_ppm": 20,
        "segments": [{"ramp_c_per_min": 10.0, "target_c": 150.0, "hold_min": 10},
                     {"ramp_c_per_min": 5.0, "target_c": 300.0, "hold_min": 30}],
        "unload_c": 150.0, "high_limit_c": None, "n2_flow_slm": 50.0, "shrink_fraction": 0.25})
    write_recipe(tmp_path, "flow", {
        "name": "FLOW-Q", "variant": "A",
        "steps": [{"process": "exposure", "recipe": "EXP-CONCAVE-01"},
                  {"process": "cure", "recipe": "CURE-Q"},
                  {"process": "etch", "recipe": "ETCH-OPEN-01"}]})
    return recipes


def lot_body(lot_id: str, wafers: list[str], flow: str = "FLOW-Q") -> dict[str, Any]:
    return {"lot": {"lot_id": lot_id, "flow": flow,
                    "wafers": [{"slot": i, "id": w} for i, w in enumerate(wafers, 1)]}}


@dataclass
class EventTap:
    """The daemon's event stream, read on a thread into ``events`` (dicts with ``kind``)."""

    url: str
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    hello: threading.Event = field(default_factory=threading.Event)

    def start(self, kinds: str | None = None) -> EventTap:
        params = {"kinds": kinds} if kinds else {}

        def read() -> None:
            try:
                stream()
            except httpx.HTTPError:  # the daemon stopped: the stream ends
                pass

        def stream() -> None:
            kind = ""
            with httpx.Client(base_url=self.url, headers=self.headers,
                              timeout=httpx.Timeout(5.0, read=None)) as c, \
                    c.stream("GET", "/events", params=params) as resp:
                for line in resp.iter_lines():
                    if line.startswith("event:"):
                        kind = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and kind == "hello":
                        self.hello.set()
                    elif line.startswith("data:"):
                        self.events.append(json.loads(line.split(":", 1)[1]))

        threading.Thread(target=read, daemon=True, name="sse-tap").start()
        assert self.hello.wait(5.0), "no hello on the event stream"
        return self

    def kinds(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["kind"] == kind
                and all(e.get(k) == v or e["data"].get(k) == v for k, v in match.items())]


@dataclass
class Daemon:
    url: str
    sims: SimThread
    db: Path
    line: EngineLine

    def client(self, role: str = "engineer", token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, headers={
            "Authorization": f"Bearer {token or TOKENS[role]}", "X-Viaform-User": "pytest"})

    def lot(self, lot_id: str) -> dict[str, Any]:
        with self.client("operator") as c:
            return c.get(f"/lots/{lot_id}").json()

    def wait_lot(self, lot_id: str, states: set[str], timeout_s: float = 30.0) -> dict[str, Any]:
        def state() -> dict[str, Any] | None:
            lot = self.lot(lot_id)
            return lot if lot["state"] in states else None
        return wait_for(state, timeout_s, f"lot {lot_id} in {states}", interval_s=0.02)

    def tool(self, tool: str) -> dict[str, Any]:
        with self.client("operator") as c:
            return c.get(f"/tools/{tool}").json()


@pytest.fixture
def daemon(tmp_path: Path, sims: SimThread) -> Iterator[Daemon]:
    recipes = quick_flow(tmp_path)
    db = tmp_path / "journal.db"
    cfg = tools_config_for(sims.endpoints, sims.clock.time_scale, journal=str(db))
    line = EngineLine(cfg, db, recipes_dir=recipes, status_poll_wall_s=0.05)
    audit = AuditLog(db)
    with ServerThread(create_app(line, AUTH, audit, recipes_dir=recipes)) as srv:
        yield Daemon(srv.url, sims, db, line)
    audit.close()


def exposures(sims: SimThread, wafer_id: str) -> int:
    w = world_snapshot(sims)["wafers"].get(wafer_id)
    return 0 if w is None else int(w["exposures"])


def eventually(pred: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    return wait_for(pred, timeout_s, what, interval_s=0.005)


def test_submitted_lot_runs_to_the_end_with_events_history_and_metrics(daemon: Daemon) -> None:
    tap = EventTap(daemon.url, {"Authorization": f"Bearer {TOKENS['operator']}"}).start()
    with daemon.client("operator") as c:
        r = c.post("/lots", json=lot_body("L1", ["A01", "A02"]))
        assert r.status_code == 201, r.text
        assert r.json()["lot_id"] == "L1"
        assert r.json()["state"] in ("QUEUED", "SETTING_UP", "WAITING_FOR_START", "PROCESSING")
        assert c.post("/lots", json=lot_body("L1", ["A03"])).status_code == 409  # id used
        dup = c.post("/lots", json=lot_body("L2", ["A02"]))  # wafer in an active lot
        assert dup.status_code == 409 and "A02" in dup.json()["detail"]
        bad = c.post("/lots", json=lot_body("L3", ["A04"], flow="NO-SUCH-FLOW"))
        assert bad.status_code == 422 and bad.json()["problems"][0]["place"] == "lot.flow"
    lot = daemon.wait_lot("L1", FINAL_LOT)
    assert lot["state"] == "PROCESS_COMPLETE"
    assert [w["state"] for w in lot["wafers"]] == ["PROCESSED", "PROCESSED"]
    assert_world_sound(world_snapshot(daemon.sims), ["A01", "A02"])
    eventually(lambda: tap.kinds("job", dst="PROCESS_COMPLETE"), "job end on the stream")
    jobs = [e["data"]["dst"] for e in tap.kinds("job", lot_id="L1")]
    assert jobs[0] == "QUEUED" and jobs[-1] == "PROCESS_COMPLETE" and "PROCESSING" in jobs
    steps = {(e["tool"], e["step"]) for e in tap.kinds("step_end", wafer_id="A01")}
    assert steps == {("exposure", "expose"), ("oven", "cure"), ("etcher", "etch")}
    assert tap.kinds("batch") and not [e for e in tap.events if e.get("lot_id") == "L3"]
    with daemon.client("operator") as c:
        wafer = c.get("/wafers/A01").json()
        assert wafer["state"] == "PROCESSED" and wafer["data"]["open"] is True
        notes = " | ".join(h["note"] for h in wafer["history"])
        for what in ("exposure START_EXPOSURE: OK", "oven START: OK", "etcher START_ETCH: OK",
                     "IN_PROCESS → PROCESSED"):
            assert what in notes
        assert c.get("/wafers/NOPE").status_code == 404
        metrics = samples(c.get("/metrics").text)
        assert metrics[key("viaform_wafers_total", state="PROCESSED")] == 2
        assert metrics[key("viaform_lots", state="PROCESS_COMPLETE")] == 1
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["tools"] == {
            "exposure": True, "oven": True, "etcher": True}


def test_pause_holds_new_steps_resume_lets_them_go_abort_ends_the_lot(daemon: Daemon) -> None:
    wafers = ["P01", "P02", "P03"]
    with daemon.client("operator") as c:
        assert c.post("/lots", json=lot_body("LP", wafers)).status_code == 201
        eventually(lambda: daemon.tool("exposure")["wafer_id"] == "P01", "P01 exposing")
        paused = c.post("/lots/LP/pause").json()
        assert paused["state"] in ("PAUSING", "PAUSED")
    daemon.wait_lot("LP", {"PAUSED"})
    assert exposures(daemon.sims, "P01") == 1
    time.sleep(0.5)  # ≈ 25 min of tool time: P02 would be well into its exposure
    assert exposures(daemon.sims, "P02") == 0 and not daemon.tool("exposure")["busy"]
    with daemon.client("operator") as c:
        assert c.post("/lots/LP/resume").json()["state"] == "PROCESSING"
        eventually(lambda: exposures(daemon.sims, "P02") == 1, "P02 exposed after resume")
        assert c.post("/lots/LP/abort").json()["state"] in ("ABORTING", "ABORTED")
        assert c.post("/lots/NOPE/abort").status_code == 404
    lot = daemon.wait_lot("LP", FINAL_LOT)
    assert lot["state"] == "ABORTED"
    states = {w["wafer_id"]: w for w in lot["wafers"]}
    assert all(w["state"] in FINAL_WAFER and w["reason"] for w in states.values())
    assert states["P03"]["state"] == "SKIPPED"  # never started
    world = world_snapshot(daemon.sims)
    assert_world_sound(world, wafers, processed=[])  # nothing left on a tool, nothing twice
    with daemon.client("operator") as c:
        assert c.post("/lots/LP/resume").status_code == 409


def test_abort_while_aborting_or_aborted_is_refused_not_a_server_error(daemon: Daemon) -> None:
    # Found by test_daemon_fuzz_engine.py: a second abort while the first waits for the
    # running cure to end answered 500 (the job machine has no ABORTING -abort-> edge).
    with daemon.client("operator") as c:
        assert c.post("/lots", json=lot_body("LA", ["AB1"])).status_code == 201
        eventually(lambda: daemon.tool("oven")["busy"], "AB1 curing")
        assert c.post("/lots/LA/abort").json()["state"] == "ABORTING"  # the cure runs ~2 s
        again = c.post("/lots/LA/abort")
        assert again.status_code == 409 and "ABORTING" in again.json()["detail"]
        assert daemon.wait_lot("LA", FINAL_LOT)["state"] == "ABORTED"
        assert c.post("/lots/LA/abort").status_code == 409


def test_a_stopped_engine_leaves_no_tool_connection_open(tmp_path: Path, sims: SimThread) -> None:
    # Found by test_daemon_fuzz_engine.py: stop() left every driver connected; each tool takes
    # 4 connections at most, so the 5th daemon started in the same process found every tool
    # closing its connection (COMMS_LOST, manual commands 503).
    import asyncio

    db = tmp_path / "journal.db"
    cfg = tools_config_for(sims.endpoints, sims.clock.time_scale, journal=str(db))

    async def lives() -> dict[str, bool]:
        for _ in range(5):
            line = EngineLine(cfg, db, recipes_dir=quick_flow(tmp_path), status_poll_wall_s=0.01)
            await line.start()
            await asyncio.sleep(0.1)  # the idle pollers have talked to every tool
            tools = line.health().tools
            alarms = [a.kind for a in line.alarms(active_only=True)]
            await line.stop()
        return {**tools, "alarms": not alarms}

    assert asyncio.run(lives()) == {"exposure": True, "oven": True, "etcher": True,
                                    "alarms": True}


def test_manual_commands_take_give_audit_and_roles(daemon: Daemon) -> None:
    tech, op = daemon.client("technician"), daemon.client("operator")
    # roles and tokens: nothing changes, nothing is audited
    assert op.post("/tools/exposure/commands", json={"command": "idn"}).status_code == 403
    bad = daemon.client(token="not-a-valid-token-at-all")
    assert bad.get("/lots").status_code == 401
    assert tech.post("/tools/exposure/take", json={"force": True}).status_code == 403
    assert tech.post("/tools/exposure/commands",
                     json={"command": "set", "args": {"name": "dose"}}).status_code == 422
    # with the tool idle, a command that changes it goes through
    ok = tech.post("/tools/exposure/commands",
                   json={"command": "set", "args": {"name": "focus", "value": 1.5}})
    assert ok.status_code == 200, ok.text
    assert tech.post("/tools/exposure/commands",
                     json={"command": "get", "args": {"name": "focus"}}).json()["reply"] == 1.5
    bad_value = tech.post("/tools/exposure/commands",
                          json={"command": "set", "args": {"name": "dose", "value": 99999}})
    assert bad_value.status_code == 422 and "dose" in bad_value.json()["detail"]
    assert op.post("/lots", json=lot_body("LT", ["T01", "T02"])).status_code == 201
    eventually(lambda: daemon.tool("exposure")["wafer_id"] == "T01", "T01 exposing")
    refused = tech.post("/tools/exposure/commands",
                        json={"command": "set", "args": {"name": "focus", "value": 0.0}})
    assert refused.status_code == 409 and "take the tool" in refused.json()["detail"]
    query = tech.post("/tools/exposure/commands", json={"command": "status"})
    assert query.status_code == 200 and query.json()["reply"]["wafer_id"] == "T01"
    taken = tech.post("/tools/exposure/take").json()
    assert taken["take_pending"] and not taken["engineering"] and taken["taken_by"] == "tec"
    assert tech.post("/tools/exposure/take").status_code == 409
    eventually(lambda: daemon.tool("exposure")["engineering"], "ENGINEERING after the step")
    time.sleep(0.4)  # ≈ 20 min of tool time: T02 would be exposing by now
    assert exposures(daemon.sims, "T02") == 0 and not daemon.tool("exposure")["busy"]
    assert daemon.tool("exposure")["e10"]["state"] == "ENGINEERING"
    assert tech.post("/tools/exposure/commands",  # taken and idle: allowed
                     json={"command": "set", "args": {"name": "focus", "value": 0.0}}
                     ).status_code == 200
    assert tech.post("/tools/exposure/give").json()["engineering"] is False
    assert tech.post("/tools/exposure/give").status_code == 409
    assert daemon.wait_lot("LT", FINAL_LOT)["state"] == "PROCESS_COMPLETE"
    audit = op.get("/audit", params={"tool": "exposure"}).json()
    rows = [(a["who"], a["role"], a["command"], a["outcome"]) for a in reversed(audit)]
    assert rows == [("tec", "technician", "set", "ok"), ("tec", "technician", "get", "ok"),
                    ("tec", "technician", "set", "error"), ("tec", "technician", "set", "refused"),
                    ("tec", "technician", "status", "ok"), ("tec", "technician", "take", "ok"),
                    ("tec", "technician", "take", "refused"), ("tec", "technician", "set", "ok"),
                    ("tec", "technician", "give", "ok"), ("tec", "technician", "give", "refused")]
    for c in (tech, op, bad):
        c.close()


def test_lost_connection_raises_an_alarm_and_the_daemon_carries_on(daemon: Daemon) -> None:
    op = daemon.client("operator")
    eventually(lambda: daemon.tool("etcher")["state"] == "IDLE", "etcher polled")
    daemon.sims.call(lambda: daemon.sims.faults["etcher"].inject("mute"))
    alarm = eventually(lambda: [a for a in op.get("/alarms", params={"active": True}).json()
                                if a["tool"] == "etcher" and a["kind"] == "COMMS_LOST"],
                       "COMMS_LOST alarm")[0]
    assert not daemon.tool("etcher")["connected"]
    assert daemon.tool("etcher")["e10"]["state"] == "UNSCHEDULED_DOWN"
    assert op.get("/health").json()["status"] == "degraded"
    assert op.post("/lots", json=lot_body("LC", ["C01"])).status_code == 201  # still serving
    daemon.sims.call(lambda: daemon.sims.faults["etcher"].clear("mute"))
    eventually(lambda: daemon.tool("etcher")["connected"], "etcher reconnected")
    with daemon.client("technician") as tech:  # acknowledging an alarm is a technician's
        acked = tech.post(f"/alarms/{alarm['id']}/ack").json()
    assert acked["active"] is False and acked["acked_by"] == "tec"
    eventually(lambda: daemon.tool("etcher")["e10"]["state"] != "UNSCHEDULED_DOWN", "E10 up")
    assert daemon.wait_lot("LC", FINAL_LOT)["state"] == "PROCESS_COMPLETE"
    op.close()


def test_a_tool_alarm_holds_the_tool_until_a_technician_acknowledges_it(
        daemon: Daemon) -> None:
    """rf_reflected while the first wafer etches: the etcher is held (view `held`, E10
    UNSCHEDULED_DOWN, one TOOL_HELD alarm); the second wafer is not loaded into it and
    its RF_REFLECTED stays latched. An operator may not acknowledge; a technician does,
    the daemon clears the tool and the lot goes on."""
    op = daemon.client("operator")
    assert op.post("/lots", json=lot_body("LH", ["R01", "R02"])).status_code == 201
    sims = daemon.sims
    eventually(lambda: sims.tools["etcher"].state == "ETCHING", "R01 etching", 60.0)
    sims.call(lambda: sims.faults["etcher"].inject("rf_reflected"))
    held = eventually(lambda: [a for a in op.get("/alarms", params={"active": True}).json()
                               if a["tool"] == "etcher" and a["kind"] == "TOOL_HELD"],
                      "the etcher held", 30.0)[0]
    sims.call(lambda: sims.faults["etcher"].clear("rf_reflected"))  # the match is fixed
    view = daemon.tool("etcher")
    assert view["held"] is True and "RF_REFLECTED" in view["held_reason"]
    assert view["e10"]["state"] == "UNSCHEDULED_DOWN"
    time.sleep(0.5)
    assert scpi(sims, "etcher", "JOB:COUN? R02") == "0", "R02 went into a held etcher"
    assert scpi(sims, "etcher", "WAF:ID?") == "NONE"
    assert "RF_REFLECTED" in scpi(sims, "etcher", "ALAR?"), "cleared without a person"
    assert op.post(f"/alarms/{held['id']}/ack").status_code == 403
    with daemon.client("technician") as tech:
        assert tech.post(f"/alarms/{held['id']}/ack").status_code == 200
    lot = daemon.wait_lot("LH", FINAL_LOT, 60.0)
    states = {w["wafer_id"]: w["state"] for w in lot["wafers"]}
    assert states == {"R01": "ABORTED", "R02": "PROCESSED"}
    assert daemon.tool("etcher")["held"] is False
    op.close()
