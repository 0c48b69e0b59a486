"""The daemon's HTTP API against a real uvicorn server on 127.0.0.1:0, with the fake line
(pause, abort and forced take: test_daemon_contract.py, on the fake and the engine).

What a client relies on: lots go in only when valid (422 lists every problem),
state changes come back on the API and the event stream, a command that would
fight a running step is refused with 409, every manual command is audited, and
a wrong token or role (401/403) changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sequencer.faces.http.app import create_app
from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE, AuthConfig, parse_env
from sequencer.faces.http.server import ServerThread
from sequencer.store.audit import AuditLog
from simulators.runner import SimThread
from tests.daemon_fake.fake_line import FakeLine
from tests.promtext import key, samples

from .flowkit import write_tools_yaml

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "recipes"
TOKENS = {"operator": "op-token-0123456789abcdef", "technician": "tech-token-0123456789abc",
          "engineer": "eng-token-0123456789abcde"}
AUTH = parse_env(",".join(f"{role[:3]}-user:{role}:{tok}" for role, tok in TOKENS.items()))
LOT = {"lot": {"lot_id": "L1", "flow": "FLOW-A",
               "wafers": [{"slot": 1, "id": "W01"}, {"slot": 2, "id": "W02"}]}}

pytestmark = pytest.mark.timeout(30)


class Daemon:
    def __init__(self, url: str, line: FakeLine, audit: AuditLog) -> None:
        self.url, self.line, self.audit = url, line, audit

    def client(self, role: str | None = "engineer", token: str | None = None) -> httpx.Client:
        headers = {}
        if token is not None or role is not None:
            headers["Authorization"] = f"Bearer {token or TOKENS[role or '']}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=5.0)


def serve(tmp_path: Path, auth: AuthConfig) -> Iterator[Daemon]:
    line, audit = FakeLine(), AuditLog(tmp_path / "audit.db")
    with ServerThread(create_app(line, auth, audit, recipes_dir=RECIPES)) as srv:
        yield Daemon(srv.url, line, audit)
    audit.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    yield from serve(tmp_path, AUTH)


def eventually(check: Callable[[], Any], timeout_s: float = 3.0) -> Any:
    """The event pump runs on the server's loop: wait for its effect, a bounded while."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(0.02)


def test_bad_lot_is_422_listing_every_problem_and_nothing_is_queued(daemon: Daemon) -> None:
    with daemon.client("operator") as c:
        bad = {"lot": {"lot_id": "L2", "flow": "FLOW-NONE",
                       "wafers": [{"slot": 1, "id": "W01"}, {"slot": 1, "id": "W01"}]}}
        r = c.post("/lots", json=bad)
        assert r.status_code == 422
        places = {p["place"] for p in r.json()["problems"]}
        assert {"lot.flow", "lot.wafers[1].slot", "lot.wafers[1].id"} <= places
        typed = {"lot": {"lot_id": "L3", "flow": "FLOW-A", "extra": 1,
                         "wafers": [{"slot": True, "id": "bad id"}]}}
        problems = c.post("/lots", json=typed).json()["problems"]
        assert {p["place"] for p in problems} == \
            {"lot.extra", "lot.wafers[0].slot", "lot.wafers[0].id"}  # true is not a slot
        too_many = {"lot": {"lot_id": "L4", "flow": "FLOW-B",
                            "wafers": [{"slot": i, "id": f"X{i}"} for i in range(1, 27)]}}
        r = c.post("/lots", json=too_many)  # a cassette holds 25
        assert [p["place"] for p in r.json()["problems"]] == ["lot.wafers"]
        assert c.post("/lots", content=b"{not json", headers={
            "content-type": "application/json"}).status_code == 422
        assert all(lot["lot_id"] not in ("L2", "L3") for lot in c.get("/lots").json())
        c.post("/lots", json=LOT)
        clash = {"lot": {**LOT["lot"], "lot_id": "L5"}}
        r = c.post("/lots", json=clash)
        assert r.status_code == 409 and "W01" in r.json()["detail"]
        assert [lot["lot_id"] for lot in c.get("/lots").json()] == ["L1"]


def test_manual_command_refused_while_a_step_runs_and_audited(daemon: Daemon) -> None:
    with daemon.client("technician") as c, daemon.client("operator") as op:
        op.post("/lots", json=LOT)
        daemon.line.start_step("etcher", "L1", "W01", "etch")
        r = c.post("/tools/etcher/commands", json={"command": "set",
                                                   "args": {"name": "rf_power", "value": 500}})
        assert r.status_code == 409
        assert "running step etch of lot L1" in r.json()["detail"]
        query = c.post("/tools/etcher/commands", json={"command": "get",
                                                       "args": {"name": "rf_power"}})
        assert query.status_code == 200 and query.json()["reply"] == 300.0  # unchanged
        raw_q = c.post("/tools/etcher/commands", json={"command": "raw",
                                                       "args": {"line": "ETCH:STAT?"}})
        assert raw_q.status_code == 200
        raw_set = c.post("/tools/etcher/commands", json={"command": "raw",
                                                         "args": {"line": "RF:POW 500"}})
        assert raw_set.status_code == 409
        daemon.line.end_step("etcher")
        ok = c.post("/tools/etcher/commands", json={"command": "set",
                                                    "args": {"name": "rf_power", "value": 500}})
        assert ok.status_code == 200
        bad = c.post("/tools/etcher/commands", json={"command": "set", "args": {"name": 1}})
        assert bad.status_code == 422
        assert {p["place"] for p in bad.json()["problems"]} == {"args.name", "args.value"}
        assert c.post("/tools/etcher/commands",
                      json={"command": "lock_door", "args": {"locked": True}}).status_code == 422
        assert c.post("/tools/nope/commands", json={"command": "idn"}).status_code == 404
        entries = op.get("/audit", params={"tool": "etcher"}).json()
    got = [(e["who"], e["command"], e["outcome"]) for e in reversed(entries)]
    assert got == [("tec-user", "set", "refused"), ("tec-user", "get", "ok"),
                   ("tec-user", "raw", "ok"), ("tec-user", "raw", "refused"),
                   ("tec-user", "set", "ok")]
    assert entries[0]["args"] == {"name": "rf_power", "value": 500}
    assert entries[-1]["reply"].startswith("etcher is running step etch")


def test_take_waits_for_the_step_give_returns_and_e10_follows(daemon: Daemon) -> None:
    with daemon.client("technician") as c, daemon.client("operator") as op:
        assert c.post("/tools/oven/take").json()["engineering"] is True
        eventually(lambda: c.get("/tools/oven").json()["e10"]["state"] == "ENGINEERING")
        assert c.post("/tools/oven/take").status_code == 409  # already taken
        assert c.post("/tools/oven/give").json()["engineering"] is False
        eventually(lambda: c.get("/tools/oven/e10").json()["state"] == "STANDBY")
        assert c.post("/tools/oven/give").status_code == 409  # not taken

        op.post("/lots", json=LOT)
        daemon.line.start_step("exposure", "L1", "W01", "expose")
        eventually(lambda: c.get("/tools/exposure").json()["e10"]["state"] == "PRODUCTIVE")
        pending = c.post("/tools/exposure/take", json={"force": False}).json()
        assert (pending["engineering"], pending["take_pending"]) == (False, True)
        daemon.line.end_step("exposure")
        view = eventually(lambda: (v := c.get("/tools/exposure").json())["engineering"] and v)
        assert view["taken_by"] == "tec-user"
        eventually(lambda: c.get("/tools/exposure/e10").json()["state"] == "ENGINEERING")
        e10 = c.get("/tools/exposure/e10").json()
        assert e10["seconds"]["PRODUCTIVE"] > 0
        assert c.post("/tools/exposure/take", json={"force": 1}).status_code == 422
        entries = op.get("/audit").json()[::-1]  # oldest first
    assert [(e["tool"], e["command"], e["outcome"]) for e in entries] == [
        ("oven", "take", "ok"), ("oven", "take", "refused"), ("oven", "give", "ok"),
        ("oven", "give", "refused"), ("exposure", "take", "ok")]
    assert entries[-1]["reply"].startswith("pending")


@pytest.mark.parametrize("role, token, expect", [
    (None, None, 401), (None, "not-a-real-token-000000", 401), ("operator", None, 403)])
def test_wrong_token_or_role_changes_nothing(daemon: Daemon, role: str | None,
                                            token: str | None, expect: int) -> None:
    with daemon.client(role, token) as c, daemon.client("engineer") as eng:
        eng.post("/lots", json=LOT)
        daemon.line.start_step("oven", "L1", "W01", "cure")
        daemon.line.end_step("oven")
        before = (eng.get("/lots").json(), eng.get("/tools/oven").json()["engineering"],
                  eng.get("/audit").json())
        r = c.post("/tools/oven/take")
        assert r.status_code == expect
        if expect == 401:
            assert r.headers["www-authenticate"] == "Bearer"
            assert c.post("/lots", json={"lot": {**LOT["lot"], "lot_id": "L9"}}).status_code \
                == 401
            assert c.post("/lots/L1/abort").status_code == 401
            assert c.post("/lots", json={"lot": {"lot_id": 5}}).status_code == 401  # not 422
            assert c.get("/health").status_code == 401
        assert c.post("/tools/oven/commands", json={"command": "reset"}).status_code == expect
        after = (eng.get("/lots").json(), eng.get("/tools/oven").json()["engineering"],
                 eng.get("/audit").json())
        assert after == before


def test_alarms_ack_and_comms_loss(daemon: Daemon) -> None:
    with daemon.client("operator") as op, daemon.client("technician") as tech:
        daemon.line.lose_comms("etcher")
        eventually(lambda: op.get("/tools/etcher").json()["e10"]["state"] == "UNSCHEDULED_DOWN")
        assert op.get("/health").json()["status"] == "degraded"
        r = tech.post("/tools/etcher/commands", json={"command": "idn"})
        assert r.status_code == 503
        assert tech.get("/audit").json()[0]["outcome"] == "error"
        alarm = op.get("/alarms", params={"active": "true"}).json()[0]
        assert (alarm["tool"], alarm["kind"], alarm["active"]) == ("etcher", "comms", True)
        daemon.line.restore_comms("etcher")
        refused = op.post(f"/alarms/{alarm['id']}/ack")  # a technician's, not an operator's
        assert refused.status_code == 403 and "needs technician" in refused.json()["detail"]
        assert daemon.line.alarms(active_only=True)[0].id == alarm["id"]  # still active
        acked = tech.post(f"/alarms/{alarm['id']}/ack").json()
        assert (acked["active"], acked["acked_by"]) == (False, "tec-user")
        assert daemon.line.alarms(active_only=True) == []
        assert len(op.get("/alarms").json()) == 1
        eventually(lambda: op.get("/tools/etcher").json()["e10"]["state"] == "STANDBY")
        assert tech.post("/alarms/999/ack").status_code == 404
        row = daemon.audit.entries(tool="etcher", limit=1)[0]
        assert (row.who, row.role, row.command, row.args, row.outcome) == \
            ("tec-user", "technician", "ack", {"alarm": alarm["id"], "kind": "comms"}, "ok")


def test_event_stream_receives_state_changes(daemon: Daemon) -> None:
    with daemon.client("operator") as op, daemon.client("operator") as listen:
        op.post("/lots", json=LOT)
        seen: list[tuple[str, dict[str, Any]]] = []
        with listen.stream("GET", "/events", params={"kinds": "job,e10"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind:
                    seen.append((kind, json.loads(line.split(":", 1)[1])))
                    if kind == "hello":  # subscribed: now make something happen
                        daemon.line.start_step("etcher", "L1", "W01", "etch")
                    if kind == "e10":
                        break
        kinds = [k for k, _ in seen]
        assert kinds[0] == "hello"
        assert ("job", "PROCESSING") in [(k, d.get("data", {}).get("dst")) for k, d in seen]
        e10 = seen[-1][1]
        assert (e10["tool"], e10["data"]["state"], e10["data"]["previous"]) == \
            ("etcher", "PRODUCTIVE", "STANDBY")


def test_metrics_and_health(daemon: Daemon) -> None:
    with daemon.client("operator") as op:
        op.post("/lots", json=LOT)
        daemon.line.start_step("etcher", "L1", "W01", "etch")
        daemon.line.end_step("etcher")
        health = op.get("/health").json()
        assert (health["status"], health["auth"], health["lots_active"]) == ("ok", "tokens", 1)
        assert health["tools"] == {"exposure": True, "oven": True, "etcher": True}

        def scraped() -> str:
            text = op.get("/metrics").text
            return text if "viaform_step_duration_seconds_count" in text else ""
        text = eventually(scraped)
        r = op.get("/metrics")
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        got = samples(text)  # Prometheus's parser: raises on anything not the text format
        assert got[key("viaform_lots", state="PROCESSING")] == 1
        assert got[key("viaform_tool_e10_state", state="STANDBY", tool="etcher")] == 1
        assert got[key("viaform_step_duration_seconds_count", step="etch", tool="etcher")] == 1


def test_open_on_loopback_without_tokens_audits_the_named_user(tmp_path: Path) -> None:
    for daemon in serve(tmp_path, AuthConfig()):
        with httpx.Client(base_url=daemon.url, timeout=5.0,
                          headers={"X-Viaform-User": "dave", CLIENT_HEADER: CLIENT_VALUE}) as c:
            assert c.get("/health").json()["auth"] == "open"
            assert c.post("/tools/oven/commands", json={"command": "idn"}).status_code == 200
            assert c.get("/audit").json()[0]["who"] == "dave"
            assert c.get("/audit").json()[0]["role"] == "open"


@contextmanager
def daemon_process(tmp_path: Path, sims: SimThread, *args: str) -> Iterator[
        subprocess.Popen[str]]:
    """``viaform daemon`` on the simulators, no tokens; killed if it outlives the test."""
    db = tmp_path / "journal.db"
    tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VIAFORM_TOKENS", None)
    env.pop("VIAFORM_TOKENS_FILE", None)
    viaform = Path(sys.executable).with_name("viaform")
    proc = subprocess.Popen([str(viaform), "daemon", "--config", str(tools), "--db", str(db),
                             "--recipes", str(RECIPES), *args], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_sigterm_with_an_open_event_stream_exits_0(tmp_path: Path, sims: SimThread) -> None:
    with daemon_process(tmp_path, sims, "--bind", "127.0.0.1:0") as proc:
        assert proc.stderr is not None
        url = ""
        while not url:
            line = proc.stderr.readline()
            assert line, f"the daemon exited {proc.poll()} before serving"
            m = re.search(r" on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else ""
        headers = {CLIENT_HEADER: CLIENT_VALUE}
        eventually(lambda: _answers(url), timeout_s=20.0)  # the engine has started
        with httpx.Client(base_url=url, timeout=10.0, headers=headers) as c, \
                c.stream("GET", "/events") as s:
            next(s.iter_lines())  # the hello event: the stream is open
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Path,
                                                          sims: SimThread) -> None:
    with daemon_process(tmp_path, sims, "--bind", "0.0.0.0:0") as proc:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "without tokens" in err
    assert not (tmp_path / "journal.db").exists()  # refused before the journal or a tool
