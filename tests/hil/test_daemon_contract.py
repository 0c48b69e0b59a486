"""One API contract, two lines: the tests' in-memory fake and the real engine on the simulators.

Each check runs against both (``rig`` is parametrized), over a real uvicorn on
127.0.0.1:0. What an operator, a technician and an engineer rely on, and where the
fake used to disagree with the engine:

* a pause or an abort asked while a step of the lot runs does not cut the step: the
  lot is PAUSING / ABORTING until it ends, then PAUSED / ABORTED (the wafer that was
  in the step ABORTED, those never started SKIPPED); no new step starts meanwhile;
* a forced take (an engineer's) pauses the running step's lot at once, the step
  finishes, the tool is ENGINEERING when it ends and no step starts there until give;
* a take of an idle tool is at once, and a lot waiting for that tool stays QUEUED.

The engine drives its own steps: ``EngineRig`` waits for them on the API; the fake
moves only when told: ``FakeRig`` starts and ends them (``tick``, ``end_step``) the
way the engine would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from sequencer.faces.http.app import create_app
from sequencer.faces.http.engine_line import EngineLine
from sequencer.faces.http.server import ServerThread
from sequencer.line.simhost import tools_config_for
from sequencer.store.audit import AuditLog
from simulators.runner import SimThread
from tests.daemon_fake.fake_line import FakeLine

from .flowkit import wait_for, world_snapshot
from .test_daemon_engine import AUTH, TOKENS, lot_body, quick_flow

SCALE = 300.0  # an exposure lasts ~1 s of wall time: long enough to act while it runs
WAFERS = ["C01", "C02", "C03"]
pytestmark = [pytest.mark.timeout(90), pytest.mark.sim_time_scale(SCALE)]


class Rig(Protocol):
    url: str

    def step_running(self, tool: str, lot_id: str) -> str:
        """Wait until (engine) or make (fake) a step of ``lot_id`` run on ``tool``;
        the wafer in it."""

    def step_ends(self, tool: str) -> None:
        """The step running on ``tool`` ends (its work done)."""

    def time_passes(self) -> None:
        """Long enough that the line would have started whatever it may start."""

    def steps_done(self, wafer_id: str) -> int:
        """Steps the wafer has completed (exposures on the simulator, for the engine)."""


class FakeRig:
    def __init__(self, url: str, line: FakeLine) -> None:
        self.url, self.line = url, line
        self.done: dict[str, int] = {}

    def step_running(self, tool: str, lot_id: str) -> str:
        self.line.tick()
        view = self.line.tool_status(tool)
        assert view.busy and view.lot_id == lot_id, f"no step of {lot_id} on {tool}"
        return view.wafer_id or ""

    def step_ends(self, tool: str) -> None:
        wafer = self.line.tool_status(tool).wafer_id or ""
        self.line.end_step(tool)
        self.done[wafer] = self.done.get(wafer, 0) + 1

    def time_passes(self) -> None:
        self.line.tick()

    def steps_done(self, wafer_id: str) -> int:
        return self.done.get(wafer_id, 0)


class EngineRig:
    def __init__(self, url: str, sims: SimThread) -> None:
        self.url, self.sims = url, sims

    def _tool(self, tool: str) -> dict[str, Any]:
        with client(self, "operator") as c:
            return c.get(f"/tools/{tool}").json()

    def step_running(self, tool: str, lot_id: str) -> str:
        def running() -> str | None:
            view = self._tool(tool)
            return view["wafer_id"] if view["busy"] and view["lot_id"] == lot_id else None
        return str(wait_for(running, 30.0, f"a step of {lot_id} on {tool}", interval_s=0.005))

    def step_ends(self, tool: str) -> None:
        wafer = self._tool(tool)["wafer_id"]
        wait_for(lambda: self._tool(tool)["wafer_id"] != wafer, 30.0,
                 f"the step of {wafer} on {tool} to end", interval_s=0.01)

    def time_passes(self) -> None:
        time.sleep(1200.0 / SCALE)  # 20 min of tool time: longer than an exposure

    def steps_done(self, wafer_id: str) -> int:
        w = world_snapshot(self.sims)["wafers"].get(wafer_id)
        return 0 if w is None else int(w["exposures"])


def client(rig: Rig, role: str) -> httpx.Client:
    return httpx.Client(base_url=rig.url, timeout=10.0,
                        headers={"Authorization": f"Bearer {TOKENS[role]}"})


@pytest.fixture(params=["fake", "engine"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    recipes = quick_flow(tmp_path)
    db = tmp_path / "journal.db"
    audit = AuditLog(db)
    if request.param == "fake":
        fake = FakeLine()
        with ServerThread(create_app(fake, AUTH, audit, recipes_dir=recipes)) as srv:
            yield FakeRig(srv.url, fake)
    else:
        sims: SimThread = request.getfixturevalue("sims")
        cfg = tools_config_for(sims.endpoints, sims.clock.time_scale, journal=str(db))
        line = EngineLine(cfg, db, recipes_dir=recipes, status_poll_wall_s=0.05)
        with ServerThread(create_app(line, AUTH, audit, recipes_dir=recipes)) as srv:
            yield EngineRig(srv.url, sims)
    audit.close()


def lot_state(c: httpx.Client, lot_id: str) -> str:
    return str(c.get(f"/lots/{lot_id}").json()["state"])


def eventually(check: Callable[[], Any], what: str) -> Any:
    return wait_for(check, 30.0, what, interval_s=0.01)


def test_pause_while_a_step_runs_waits_for_it_and_holds_new_steps_until_resume(
        rig: Rig) -> None:
    with client(rig, "operator") as op:
        assert op.post("/lots", json=lot_body("LP", WAFERS)).status_code == 201
        first = rig.step_running("exposure", "LP")
        assert op.post("/lots/LP/pause").json()["state"] == "PAUSING"  # the step runs on
        assert op.get("/tools/exposure").json()["busy"] is True
        rig.step_ends("exposure")
        eventually(lambda: lot_state(op, "LP") == "PAUSED", "LP PAUSED after the step")
        assert rig.steps_done(first) == 1
        rig.time_passes()
        assert op.get("/tools/exposure").json()["busy"] is False  # no new step while paused
        assert op.post("/lots/LP/pause").status_code == 409  # only a PROCESSING lot pauses
        assert op.post("/lots/LP/resume").json()["state"] == "PROCESSING"
        second = rig.step_running("exposure", "LP")
        assert second != first and rig.steps_done(second) == 0
        assert op.post("/lots/LP/resume").status_code == 409  # not paused


def test_abort_while_a_step_runs_waits_for_it_and_ends_every_wafer(rig: Rig) -> None:
    with client(rig, "operator") as op:
        assert op.post("/lots", json=lot_body("LA", WAFERS)).status_code == 201
        first = rig.step_running("exposure", "LA")
        assert op.post("/lots/LA/abort").json()["state"] == "ABORTING"
        again = op.post("/lots/LA/abort")
        assert again.status_code == 409 and "ABORTING" in again.json()["detail"]
        rig.step_ends("exposure")
        eventually(lambda: lot_state(op, "LA") == "ABORTED", "LA ABORTED after the step")
        wafers = {w["wafer_id"]: w for w in op.get("/lots/LA").json()["wafers"]}
        assert {w: v["state"] for w, v in wafers.items()} == {
            first: "ABORTED", **{w: "SKIPPED" for w in WAFERS if w != first}}
        assert all(v["reason"] for v in wafers.values())
        assert rig.steps_done(first) == 1  # the step was not cut
        rig.time_passes()
        assert op.get("/tools/exposure").json()["busy"] is False
        for action in ("abort", "pause", "resume"):
            assert op.post(f"/lots/LA/{action}").status_code == 409, action


def test_forced_take_pauses_the_lot_at_once_then_engineering_when_the_step_ends(
        rig: Rig) -> None:
    with client(rig, "technician") as tech, client(rig, "engineer") as eng:
        assert tech.post("/lots", json=lot_body("LF", WAFERS)).status_code == 201
        first = rig.step_running("exposure", "LF")
        refused = tech.post("/tools/exposure/take", json={"force": True})
        assert refused.status_code == 403  # a forced take is an engineer's
        assert tech.get("/tools/exposure").json()["take_pending"] is False
        forced = eng.post("/tools/exposure/take", json={"force": True}).json()
        assert (forced["take_pending"], forced["engineering"], forced["busy"]) == \
            (True, False, True)  # the step is not cut
        assert lot_state(eng, "LF") == "PAUSING"  # paused at once
        rig.step_ends("exposure")
        eventually(lambda: eng.get("/tools/exposure").json()["engineering"],
                   "ENGINEERING when the step ended")
        eventually(lambda: eng.get("/tools/exposure/e10").json()["state"] == "ENGINEERING",
                   "E10 ENGINEERING")
        assert lot_state(eng, "LF") == "PAUSED"
        assert rig.steps_done(first) == 1
        assert eng.get(f"/wafers/{first}").json()["state"] == "IN_PROCESS"  # on to the cure
        assert eng.post("/lots/LF/resume").json()["state"] == "PROCESSING"
        rig.time_passes()
        view = eng.get("/tools/exposure").json()
        assert (view["busy"], view["engineering"], view["taken_by"]) == (False, True, "eng")
        assert all(rig.steps_done(w) == 0 for w in WAFERS if w != first)  # none until give
        assert eng.post("/tools/exposure/give").json()["engineering"] is False
        second = rig.step_running("exposure", "LF")
        assert second != first
        entries = eng.get("/audit", params={"tool": "exposure"}).json()[::-1]
    assert [(e["who"], e["command"], e["outcome"]) for e in entries] == [
        ("eng", "take --force", "ok"), ("eng", "give", "ok")]  # a 403 is not the line's


def test_take_of_an_idle_tool_is_at_once_and_a_lot_waits_for_give(rig: Rig) -> None:
    with client(rig, "technician") as tech:
        assert tech.post("/tools/exposure/take").json()["engineering"] is True
        eventually(lambda: tech.get("/tools/exposure/e10").json()["state"] == "ENGINEERING",
                   "E10 ENGINEERING")
        assert tech.post("/tools/exposure/take").status_code == 409  # already taken
        assert tech.post("/lots", json=lot_body("LT", WAFERS)).status_code == 201
        rig.time_passes()
        assert lot_state(tech, "LT") == "QUEUED"
        assert tech.get("/tools/exposure").json()["busy"] is False
        assert tech.post("/lots/LT/pause").status_code == 409  # nothing runs to pause
        assert tech.post("/tools/exposure/give").json()["engineering"] is False
        assert tech.post("/tools/exposure/give").status_code == 409  # not taken
        rig.step_running("exposure", "LT")
        assert lot_state(tech, "LT") == "PROCESSING"
        eventually(lambda: tech.get("/tools/exposure/e10").json()["state"] == "PRODUCTIVE",
                   "E10 PRODUCTIVE")
