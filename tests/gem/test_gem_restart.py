"""`viaform daemon` stopped with SIGTERM and started again on the same journal: the GEM
state the host set up is there before its first message is answered — reports, links,
enabled events and alarms, ECs, the spool configuration, the control state (with its
online substate) and the spooled messages themselves.

Also the start-up refusals of the ``gem:`` section: beyond loopback without
``gem.allow_hosts`` the daemon does not start (exit 2, one line); a peer not in
``allow_hosts`` is dropped at connect and logged.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from sequencer.faces.cli import app
from simulators.runner import SimThread
from tests.hil.flowkit import REPO, wait_for
from tests.hil.test_daemon_engine import lot_body, quick_flow

from .gemkit import (
    HEADERS,
    SCALE,
    T,
    V,
    define_reports,
    gem_daemon,
    gem_host,
    gem_tools_yaml,
    host_transitions,
    stop,
)


@pytest.mark.timeout(120)
def test_reports_links_ecs_control_state_and_spool_survive_a_restart(tmp_path: Path) -> None:
    recipes, db = quick_flow(tmp_path), tmp_path / "journal.db"
    held = T.alarm_by_name["exposure.TOOL_HELD"].alid
    complete = T.event_by_name["Substrate.complete.IN_PROCESS.PROCESSED"].ceid
    with SimThread(time_scale=SCALE, seed=11) as sims:
        tools = gem_tools_yaml(tmp_path, sims, db)
        with gem_daemon(tools, db, recipes, "first") as d:
            with gem_host(d.gem_port) as host:
                define_reports(host, T)
                assert host.request(5, 3, {"ALED": 0, "ALID": held}) == 0
                assert host.request(2, 15, [{"ECID": V["QueueTimeCureToEtchS"],
                                             "ECV": 7200.0}]) == 0
                assert host.request(2, 43, [{"STRID": 6, "FCNID": [11]}]) == {
                    "RSPACK": 0, "DATA": []}
                assert host.request(2, 43, [{"STRID": 1, "FCNID": []}])["RSPACK"] == 1
                # names of events, alarms; a report on request; the GEM clock set by the host
                names = {e["CEID"]: (e["CENAME"], e["VID"]) for e in host.request(1, 23, [])}
                assert names[complete][0] == "Substrate.complete.IN_PROCESS.PROCESSED"
                assert V["DepthUm"] in names[complete][1]
                alarm = host.request(5, 5, [held])[0]
                assert alarm["ALID"] == held and alarm["ALTX"].startswith("exposure: ")
                assert held not in [a["ALID"] for a in host.request(5, 7)]
                report = host.request(6, 15, complete)
                assert [r["RPTID"] for r in report["RPT"]] == [1, 3]
                assert host.request(2, 31, "20300101120000") == 0  # TIACK 0
                assert host.request(2, 31, "yesterday") == 1
                assert host.request(2, 17).startswith("2030010112")
                result = CliRunner().invoke(app, ["gem", "local", "--daemon", d.url])
                assert result.exit_code == 0, result.output
            # the host is gone: the lot's events are spooled in the journal
            r = httpx.post(f"{d.url}/lots", json=lot_body("RL1", ["R01"]), headers=HEADERS)
            assert r.status_code == 201, r.text
            wait_for(lambda: httpx.get(f"{d.url}/lots/RL1").json()["state"] ==
                     "PROCESS_COMPLETE", 60.0, "RL1 done", interval_s=0.05)
            spooled = httpx.get(f"{d.url}/gem").json()["spooled"]
            assert spooled > 0
            stop(d)
        with gem_daemon(tools, db, recipes, "second") as d:
            assert httpx.get(f"{d.url}/gem").json()["control_state"] == "HOST_OFFLINE"
            with gem_host(d.gem_port) as host:
                assert host.request(1, 17) == 0  # back ONLINE, in its LOCAL substate
                control, count, events, alarms = host.request(1, 3, [
                    V["ControlState"], V["SpoolCountActual"], V["EventsEnabled"],
                    V["AlarmsEnabled"]])
                assert control == 4 and count >= spooled
                assert complete in events and held not in alarms and alarms
                assert host.request(2, 13, [V["QueueTimeCureToEtchS"]]) == [7200.0]
                assert host.request(2, 17).startswith("2030010112")  # the host's clock kept
                assert len(host.request(6, 19, 3)) == 7  # report 3 still has its 7 VIDs
                assert host.request(2, 35, {"DATAID": 9, "DATA": [
                    {"CEID": complete, "RPTID": [3]}]}) == 3  # and is still linked
                assert host.request(6, 23, 0) == 0
                wait_for(lambda: ("RL1", "PROCESSING", "PROCESS_COMPLETE") in
                         host_transitions(host), 15.0, "the spooled lot's events",
                         interval_s=0.05)
                assert ("R01", "IN_PROCESS", "PROCESSED") in host_transitions(host)
                stop(d)  # with the host connected: the drop is the daemon's own
        with gem_daemon(tools, db, recipes, "third") as d:
            with gem_host(d.gem_port) as host:
                assert host.request(1, 3, [V["ControlState"]]) == [4]  # ONLINE LOCAL
                assert host.request(1, 17) == 2  # already online
            stop(d)


def _daemon_refuses(tmp_path: Path, gem: dict[str, object]) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "tools.yaml"
    doc = yaml.safe_load((REPO / "configs" / "tools.yaml").read_text())
    doc["journal"] = str(tmp_path / "j.db")
    doc["gem"] = {"enabled": True, "port": 0, **gem}
    cfg.write_text(yaml.safe_dump(doc))
    viaform = Path(sys.executable).with_name("viaform")
    return subprocess.run([str(viaform), "daemon", "--config", str(cfg), "--bind",
                           "127.0.0.1:0"], capture_output=True, text=True, timeout=30,
                          cwd=REPO, env={"PATH": "/usr/bin:/bin", "VIAFORM_TOKENS": ""})


def test_beyond_loopback_without_allow_hosts_the_daemon_refuses_to_start(
        tmp_path: Path) -> None:
    done = _daemon_refuses(tmp_path, {"bind": "0.0.0.0"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "gem.allow_hosts" in lines[0] and "Traceback" not in done.stderr
    done = _daemon_refuses(tmp_path, {"bind": "0.0.0.0", "allow_hosts": ["fab-host"]})
    assert done.returncode == 2 and "not an IP address" in done.stderr


@pytest.mark.timeout(60)
def test_a_peer_not_in_allow_hosts_is_dropped_at_connect_and_logged(tmp_path: Path) -> None:
    recipes, db = quick_flow(tmp_path), tmp_path / "journal.db"
    with SimThread(time_scale=SCALE, seed=12) as sims:
        tools = gem_tools_yaml(tmp_path, sims, db, allow_hosts=["10.20.30.40"])
        with gem_daemon(tools, db, recipes, "allow") as d:
            sock = socket.create_connection(("127.0.0.1", d.gem_port), timeout=5.0)
            sock.settimeout(5.0)
            assert sock.recv(16) == b""  # closed before any byte
            sock.close()
            wait_for(lambda: "not in gem.allow_hosts" in d.err.read_text(), 5.0, "the log line")
            assert httpx.get(f"{d.url}/gem").json()["sessions"] == 0
            stop(d)
