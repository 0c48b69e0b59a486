"""The daemon's front door over a real uvicorn socket (fake line): cross-site requests,
authentication before validation, the OpenAPI document's security, held wafers' disposition.

What a user relies on: a web page open in the tool PC's browser cannot take a tool,
abort a lot, acknowledge an alarm or submit a lot, with or without tokens; a request
without a token is 401 whatever its body; the document tells a client what it must
send; only an engineer releases or scraps a held wafer, all or nothing, audited.
Every refusal is checked on the line itself (the fake's tools, lots, alarms).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE, AuthConfig

from .test_daemon_api import AUTH, LOT, Daemon, serve

pytestmark = pytest.mark.timeout(30)
EVIL = "http://evil.example"
CLI = {CLIENT_HEADER: CLIENT_VALUE}


@pytest.fixture
def open_daemon(tmp_path: Path) -> Iterator[Daemon]:
    yield from serve(tmp_path, AuthConfig())


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    yield from serve(tmp_path, AUTH)


def plain(d: Daemon, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=d.url, headers=headers, timeout=5.0)


def a_running_line(d: Daemon) -> int:
    """Lot L1 PROCESSING on the exposure cell, an active alarm on the oven: its id."""
    with plain(d, **CLI) as c:
        assert c.post("/lots", json=LOT).status_code == 201
    d.line.start_step("exposure", "L1", "W01", "expose")
    return d.line.raise_alarm("oven", "high_limit", "oven: high-limit trip").id


def line_snapshot(d: Daemon) -> tuple[Any, ...]:
    """What a refused request must not have changed, read from the line itself."""
    return (d.line.lots(), [d.line.tool_status(t) for t in d.line.tools()],
            d.line.alarms(active_only=False), d.audit.entries())


STATE_CHANGES = [  # (path, body): each the kind of request a hostile page would send
    ("/tools/oven/take", None), ("/tools/etcher/take", {"force": True}),
    ("/lots/L1/abort", None), ("/lots/L1/pause", None), ("/alarms/{alarm}/ack", None),
    ("/lots", {"lot": {**LOT["lot"], "lot_id": "L7",
                       "wafers": [{"slot": 1, "id": "X01"}]}}),
    ("/tools/oven/commands", {"command": "reset"}),
]


@pytest.mark.parametrize("headers", [
    {"Origin": EVIL}, {"Origin": EVIL, **CLI}, {"Referer": f"{EVIL}/page.html"},
    {"Origin": "null"}, {"Origin": "http://127.0.0.1:1"},  # another port on this host
])
def test_open_daemon_refuses_cross_site_state_changes(open_daemon: Daemon,
                                                      headers: dict[str, str]) -> None:
    alarm = a_running_line(open_daemon)
    before = line_snapshot(open_daemon)
    with plain(open_daemon, **headers) as c:
        for path, body in STATE_CHANGES:
            r = c.post(path.format(alarm=alarm), json=body)
            assert r.status_code == 403, (path, r.text)
            assert "nothing was changed" in r.json()["detail"]
        assert c.get("/lots/L1").status_code == 200  # a GET is not a state change
    assert line_snapshot(open_daemon) == before
    assert open_daemon.line.lot("L1").state == "PROCESSING"
    assert not open_daemon.line.tool_status("oven").engineering
    assert open_daemon.line.alarms(active_only=True)[0].id == alarm


def test_open_daemon_without_origin_needs_the_cli_header(open_daemon: Daemon) -> None:
    alarm = a_running_line(open_daemon)
    before = line_snapshot(open_daemon)
    with plain(open_daemon) as bare:
        for path, body in STATE_CHANGES:
            r = bare.post(path.format(alarm=alarm), json=body)
            assert r.status_code == 403 and CLIENT_HEADER in r.json()["detail"], path
        wrong = bare.post("/tools/oven/take", headers={CLIENT_HEADER: "curl"})
        assert wrong.status_code == 403
    assert line_snapshot(open_daemon) == before
    with plain(open_daemon, **CLI) as cli:
        assert cli.post("/tools/oven/take").status_code == 200
        assert cli.post(f"/alarms/{alarm}/ack").status_code == 200
        assert cli.post("/lots/L1/abort").status_code == 200
    assert open_daemon.line.tool_status("oven").engineering
    assert open_daemon.line.alarms(active_only=True) == []
    assert open_daemon.line.lot("L1").state == "ABORTING"  # the exposure runs on
    open_daemon.line.end_step("exposure")
    assert open_daemon.line.lot("L1").state == "ABORTED"


def test_open_daemon_accepts_its_own_origin_and_refuses_a_rebound_name(
        open_daemon: Daemon) -> None:
    a_running_line(open_daemon)
    port = urlsplit(open_daemon.url).port
    for origin in (open_daemon.url, f"http://localhost:{port}"):  # /docs' "try it out"
        with plain(open_daemon, Origin=origin) as c:
            assert c.post("/tools/oven/take").status_code == 200, origin
            assert c.post("/tools/oven/give").status_code == 200, origin
    # DNS rebinding: evil.example resolved to 127.0.0.1, so Host and Origin agree
    with plain(open_daemon, Origin=f"http://evil.example:{port}",
               Host=f"evil.example:{port}") as c:
        assert c.post("/tools/oven/take").status_code == 403
    assert not open_daemon.line.tool_status("oven").engineering


def test_tokens_daemon_refuses_cross_site_even_with_a_token(daemon: Daemon) -> None:
    with daemon.client("engineer") as eng:
        eng.post("/lots", json=LOT)
        daemon.line.start_step("exposure", "L1", "W01", "expose")
        alarm = daemon.line.raise_alarm("oven", "high_limit", "oven: high-limit trip").id
        before = line_snapshot(daemon)
        for path, body in STATE_CHANGES:
            r = eng.post(path.format(alarm=alarm), json=body, headers={"Origin": EVIL})
            assert r.status_code == 403, (path, r.text)
        assert line_snapshot(daemon) == before
        # the name the client used (a tool-PC name, a proxy) is the daemon's own origin
        ok = eng.post("/tools/oven/take", headers={"Origin": "http://toolpc.fab:8750",
                                                    "Host": "toolpc.fab:8750"})
        assert ok.status_code == 200 and daemon.line.tool_status("oven").engineering


MALFORMED = [b"{not json", b'{"lot": {"lot_id": 5}}', b"[]", b""]


def test_no_token_is_401_whatever_the_body(daemon: Daemon) -> None:
    paths = ["/lots", "/tools/oven/commands", "/tools/oven/take", "/wafers/release",
             "/wafers/scrap", "/alarms/1/ack", "/lots/L1/abort"]
    with plain(daemon) as c, daemon.client(None, "not-a-real-token-000000") as wrong:
        for client in (c, wrong):
            for path in paths:
                for body in MALFORMED:
                    r = client.post(path, content=body,
                                    headers={"content-type": "application/json"})
                    assert r.status_code == 401, (path, body, r.text)
                    assert r.headers["www-authenticate"] == "Bearer"
    assert daemon.line.lots() == [] and daemon.audit.entries() == []


@pytest.mark.parametrize("role, paths", [
    ("operator", ["/tools/oven/commands", "/tools/oven/take", "/alarms/1/ack"]),
    ("technician", ["/wafers/release", "/wafers/scrap"])])
def test_a_role_too_low_is_403_before_the_body_is_validated(
        daemon: Daemon, role: str, paths: list[str]) -> None:
    daemon.line.raise_alarm("oven", "high_limit", "oven: high-limit trip")
    before = line_snapshot(daemon)
    with daemon.client(role) as c:
        for path in paths:
            for body in MALFORMED:
                r = c.post(path, content=body, headers={"content-type": "application/json"})
                assert r.status_code == 403, (path, body, r.text)
                assert f"needs {'engineer' if 'wafers' in path else 'technician'}" in \
                    r.json()["detail"]
    assert line_snapshot(daemon) == before
    with daemon.client("engineer") as eng:  # the right role gets to the validation
        assert eng.post("/wafers/release", content=b"{not json",
                        headers={"content-type": "application/json"}).status_code == 422


def test_openapi_states_bearer_security_with_tokens(daemon: Daemon) -> None:
    with plain(daemon) as c:  # the document and the docs page are public
        doc = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
        assert c.get("/health").status_code == 401 and c.get("/metrics").status_code == 401
    assert doc["components"]["securitySchemes"] == {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"]}}
    ops = [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(ops) >= 19 and {"/health", "/metrics", "/wafers/release"} <= doc["paths"].keys()
    for path, method, op in ops:
        assert op.get("security") == [{"bearer": []}], (method, path)
        assert "401" in op["responses"], (method, path)


def test_openapi_states_the_cli_header_on_state_changes_when_open(
        open_daemon: Daemon) -> None:
    with plain(open_daemon) as c:
        doc = c.get("/openapi.json").json()
        assert c.get("/health").status_code == 200  # open: no token, no header, on a GET
    assert doc["components"]["securitySchemes"] == {"viaformClient": {
        "type": "apiKey", "in": "header", "name": CLIENT_HEADER,
        "description": doc["components"]["securitySchemes"]["viaformClient"]["description"]}}
    assert CLIENT_VALUE in doc["components"]["securitySchemes"]["viaformClient"]["description"]
    posts = gets = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "401" not in op["responses"], (method, path)
            if method == "post":
                posts += 1
                assert op.get("security") == [{"viaformClient": []}], path
                assert "403" in op["responses"], path
            else:
                gets += 1
                assert "security" not in op, (method, path)
    assert posts >= 8 and gets >= 11


# --- held wafers: release and scrap ------------------------------------------------------
def held_lot(d: Daemon) -> None:
    """L1: W01 held after its cure (an excursion), W02 still to be processed."""
    with d.client("engineer") as eng:
        assert eng.post("/lots", json=LOT).status_code == 201
    d.line.start_step("exposure", "L1", "W01", "expose")
    d.line.end_step("exposure")
    d.line.start_step("oven", "L1", "W01", "cure")
    d.line.hold_wafer("W01", "cure excursion: O2 30072 ppm (limit 20) for 21 min at 318 °C")
    assert d.line.wafer("W01").state == "STOPPED"


def test_engineer_releases_a_held_wafer_to_its_next_step_audited(daemon: Daemon) -> None:
    held_lot(daemon)
    with daemon.client("engineer") as eng:
        r = eng.post("/wafers/release", json={"wafers": ["W01"], "reason": "O2 probe fault"})
        assert r.status_code == 200, r.text
        assert [(w["wafer_id"], w["state"], w["step"]) for w in r.json()] == \
            [("W01", "IN_PROCESS", "waiting for etcher")]
    w01 = daemon.line.wafer("W01")
    assert (w01.state, w01.reason) == ("IN_PROCESS", None)
    assert w01.history[-1].note == "released by eng-user: O2 probe fault"
    assert daemon.line.lot("L1").state == "PROCESSING"
    row = daemon.audit.entries(tool="wafer")[0]
    assert (row.who, row.role, row.command, row.outcome) == \
        ("eng-user", "engineer", "release", "ok")
    assert row.args == {"wafers": ["W01"], "reason": "O2 probe fault"}


def test_engineer_scraps_a_held_wafer_rejected_audited(daemon: Daemon) -> None:
    held_lot(daemon)
    with daemon.client("engineer") as eng:
        r = eng.post("/wafers/scrap", json={"wafers": ["W01"], "reason": "cured in air"})
        assert r.status_code == 200, r.text
        assert r.json()[0]["state"] == "REJECTED"
    w01 = daemon.line.wafer("W01")
    assert (w01.state, w01.reason) == ("REJECTED", "scrapped by eng-user: cured in air")
    row = daemon.audit.entries(tool="wafer")[0]
    assert (row.command, row.args["wafers"], row.outcome) == ("scrap", ["W01"], "ok")


def test_disposition_of_a_wafer_not_held_changes_none_of_them(daemon: Daemon) -> None:
    held_lot(daemon)
    before = line_snapshot(daemon)[:3]
    with daemon.client("engineer") as eng:
        for action in ("release", "scrap"):
            r = eng.post(f"/wafers/{action}", json={"wafers": ["W01", "W02"], "reason": "x"})
            assert r.status_code == 409, r.text
            assert "W02 is NEEDS_PROCESSING" in r.json()["detail"]
            assert "W01" not in r.json()["detail"]  # W01 is held: only W02 is named
            unknown = eng.post(f"/wafers/{action}", json={"wafers": ["W01", "ZZ9"],
                                                          "reason": "x"})
            assert unknown.status_code == 404
    assert line_snapshot(daemon)[:3] == before  # W01 still STOPPED, W02 untouched
    outcomes = [(e.command, e.outcome) for e in daemon.audit.entries(tool="wafer")[::-1]]
    assert outcomes == [("release", "refused"), ("release", "refused"),
                        ("scrap", "refused"), ("scrap", "refused")]


@pytest.mark.parametrize("body, place", [
    ({"wafers": [], "reason": "x"}, "wafers"),
    ({"wafers": [f"W{i:02d}" for i in range(26)], "reason": "x"}, "wafers"),
    ({"wafers": ["W01"], "reason": ""}, "reason"),
    ({"wafers": ["W01"], "reason": "   "}, "reason"),
    ({"wafers": ["W01"]}, "reason"),
    ({"wafers": ["bad id"], "reason": "x"}, "wafers[0]"),
    ({"wafers": ["W01"], "reason": "x", "force": True}, "force"),
    ({"wafers": ["W01", "W01"], "reason": "x"}, "wafers"),
    ({"wafers": "W01", "reason": "x"}, "wafers"),
])
def test_disposition_body_is_validated(daemon: Daemon, body: dict[str, Any],
                                       place: str) -> None:
    held_lot(daemon)
    with daemon.client("engineer") as eng:
        r = eng.post("/wafers/release", json=body)
        assert r.status_code == 422, r.text
        assert place in [p["place"] for p in r.json()["problems"]]
    assert daemon.line.wafer("W01").state == "STOPPED"
    assert daemon.audit.entries(tool="wafer") == []

