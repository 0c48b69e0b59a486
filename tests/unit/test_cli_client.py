"""The CLI's daemon client: where it finds the daemon, what it sends, how refusals read.

The daemon is an ``httpx.MockTransport`` here (no sockets); the CLI runs in-process
(``typer.testing.CliRunner``). The real daemon is exercised in tests/hil/test_daemon_*.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import sequencer.faces.cli.client as client
from sequencer.faces.cli import app
from sequencer.store.journal import Journal


class Seen(list):  # type: ignore[type-arg]
    """The requests the CLI sent; ``reply[(method, path)]`` answers them."""

    def __init__(self) -> None:
        super().__init__()
        self.reply: dict[tuple[str, str], httpx.Response] = {}


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    seen = Seen()
    replies = seen.reply

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replies.get((request.method, request.url.path),
                           httpx.Response(404, json={"detail": "not here", "problems": []}))

    monkeypatch.setattr(client, "TRANSPORT", httpx.MockTransport(handle))
    monkeypatch.setenv("VIAFORM_DAEMON", "http://daemon.test")
    monkeypatch.setenv("USER", "carol")
    monkeypatch.delenv("VIAFORM_TOKEN", raising=False)
    yield seen


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_daemon_address_flag_then_env_then_config_then_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "tools.yaml"
    tools.write_text("time_scale: 1\ndaemon: {url: 'http://tool-pc:9000/'}\n")
    monkeypatch.delenv("VIAFORM_DAEMON", raising=False)
    assert client.resolve(None, tools) == ("http://tool-pc:9000", False)
    assert client.resolve(None, tmp_path / "missing.yaml") == (client.DEFAULT_URL, False)
    monkeypatch.setenv("VIAFORM_DAEMON", "http://env:1")
    assert client.resolve(None, tools) == ("http://env:1", True)
    assert client.resolve("http://flag:2", tools) == ("http://flag:2", True)
    assert client.resolve("none", tools) == (None, True)


def test_requests_carry_the_user_and_the_bearer_token(daemon: Seen,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAFORM_TOKEN", "tok-0123456789abcdef")
    daemon.reply[("GET", "/lots")] = httpx.Response(200, json=[])
    result = run("lot", "list")
    assert result.exit_code == 0, result.output
    assert "no lots" in result.output
    assert daemon[0].headers["X-Viaform-User"] == "carol"
    assert daemon[0].headers["Authorization"] == "Bearer tok-0123456789abcdef"


def test_invalid_lot_prints_every_problem_and_exits_2(daemon: Seen,
                                                      tmp_path: Path) -> None:
    lotfile = tmp_path / "lot.yaml"
    lotfile.write_text("lot: {lot_id: L1, flow: FLOW-X, wafers: [{slot: 1, id: W01}]}\n")
    daemon.reply[("POST", "/lots")] = httpx.Response(422, json={
        "detail": "lot L1: 1 problem(s)",
        "problems": [{"place": "lot.flow", "message": "unknown flow 'FLOW-X'"}]})
    result = run("lot", "submit", str(lotfile))
    assert result.exit_code == 2
    assert "lot L1: 1 problem(s)" in result.output
    assert "lot.flow: unknown flow 'FLOW-X'" in result.output
    assert json.loads(daemon[0].content) == {
        "lot": {"lot_id": "L1", "flow": "FLOW-X", "wafers": [{"slot": 1, "id": "W01"}]}}


def test_manual_command_refused_during_a_step_says_why_and_exits_1(
        daemon: Seen) -> None:
    why = ("etcher is running step etch of lot L1 (wafer W02); 'set' would change the tool. "
           "Wait for the step to end, or take the tool ('viaform tool etcher take').")
    daemon.reply[("POST", "/tools/etcher/commands")] = httpx.Response(
        409, json={"detail": why, "problems": []})
    result = run("tool", "etcher", "set", "rf_power", "500")
    assert result.exit_code == 1
    assert why in result.output
    assert json.loads(daemon[0].content) == {"command": "set",
                                             "args": {"name": "rf_power", "value": "500"}}


def test_take_says_when_the_tool_becomes_engineering(daemon: Seen) -> None:
    daemon.reply[("POST", "/tools/oven/take")] = httpx.Response(200, json={
        "tool": "oven", "connected": True, "busy": True, "engineering": False,
        "take_pending": True, "taken_by": "carol", "step": "cure", "lot_id": "L1"})
    result = run("tool", "oven", "take")
    assert result.exit_code == 0, result.output
    assert "oven: taken by carol; ENGINEERING when step cure of lot L1 ends" in result.output


def test_lot_commands_need_a_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAFORM_DAEMON", "none")
    result = run("lot", "status", "L1")
    assert result.exit_code == 1 and "needs the daemon" in result.output


def test_unreachable_daemon_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(client, "TRANSPORT", httpx.MockTransport(refuse))
    monkeypatch.setenv("VIAFORM_DAEMON", "http://127.0.0.1:9")
    result = run("alarms", "--ack", "3")
    assert result.exit_code == 1
    assert "no daemon answers at http://127.0.0.1:9" in result.output


def test_wafer_show_reads_the_journal_when_no_daemon_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAFORM_DAEMON", "none")
    db = tmp_path / "journal.db"
    j = Journal(db, now=lambda: 1000.0)
    j.add_lot("L1", "FLOW-A", [(1, "W01")])
    iid = j.intent("exposure", "START_EXPOSURE", wafer_ids=["W01"], lot_id="L1")
    j.outcome(iid, "OK")
    j.wafer_transition("W01", "NEEDS_PROCESSING", "STOPPED", "held for disposition: test",
                       {"location": "stocker", "reason": "held for disposition: test"})
    j.result("W01", "expose", {"depth_um": 7.5})
    j.close()
    result = run("wafer", "show", "W01", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "wafer W01 (lot L1, slot 1): STOPPED at stocker — held for disposition" \
        in result.output
    assert "exposure START_EXPOSURE: OK" in result.output
    assert "expose.depth_um: 7.5" in result.output
    missing = run("wafer", "show", "W99", "--db", str(db))
    assert missing.exit_code == 1 and "no wafer 'W99'" in missing.output
