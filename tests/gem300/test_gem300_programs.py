"""S7 process programs and S10 terminal services, from a secsgem host over HSMS.

A bad program is refused with every problem (ACKC7 1, and all of them as S10 text, the
same lines ``viaform recipe check`` prints for that file) and nothing is stored; a good
one is stored as a new version in the journal and in the recipes folder, listed by
S7F19 and uploaded back by S7F5 byte for byte. A recipe change that would break a flow
using it is refused too. The host's terminal text lands in the daemon's S10 log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from secsgem.secs import variables

from sequencer.faces.gem.terminal import ascii_text
from simulators.runner import SimThread
from tests.hil.flowkit import RECIPES, wait_for
from tests.hil.test_daemon_engine import EventTap
from tests.sqlitekit import connected

from .gem300kit import bench, ceid, create_cj, create_pj, proceed

pytestmark = [pytest.mark.timeout(90), pytest.mark.sim_time_scale(2000.0)]

BAD = b"""# three problems, each where it is
etch:
  name: ETCH-BAD
  o2_sccm: 50.0
  cf4_sccm: 30.0
  pressure_mtorr: 5000.0
  rf_power_w: 300.0
  rate_nm_per_min: 500.0
  overetch_pct: 30
  endpoint: false
  colour: red
"""
GOOD = (RECIPES / "ETCH-OPEN-01.yaml").read_bytes().replace(b"ETCH-OPEN-01", b"ETCH-GOOD") \
    + "# tuned for chamber B (±2 °C)\n".encode()


def _versions(db: Path, ppid: str) -> list[dict[str, object]]:
    with connected(db) as con:
        row = con.execute("SELECT value FROM gem_state WHERE key = ?", (f"pp.{ppid}",)
                          ).fetchone()
    return [] if row is None else list(json.loads(row[0])["versions"])


def _recipe_check(tmp_path: Path, name: str, body: bytes, recipes: Path) -> list[str]:
    path = tmp_path / "check" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(body)
    out = subprocess.run([str(Path(sys.executable).with_name("viaform")), "recipe", "check",
                          str(path), "--recipes-dir", str(recipes)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1, out
    return [ascii_text(line.removeprefix(f"{path}: ")) for line in out.stdout.splitlines()]


def test_programs_checked_stored_versioned_and_uploaded(tmp_path: Path,
                                                        sims: SimThread) -> None:
    with bench(tmp_path, sims, {"CAR7": ["P01"]}) as b:
        host = b.host
        assert host.request(7, 1, {"PPID": "ETCH-BAD", "LENGTH": len(BAD)}) == 0
        assert host.request(7, 3, {"PPID": "ETCH-BAD", "PPBODY": variables.Binary(BAD)}) == 1
        wait_for(lambda: host.inbox.terminal, 10.0, "the S10 text of the refusal")
        lines = host.inbox.terminal[-1].splitlines()
        assert lines[0] == "process program ETCH-BAD refused, 3 problems:"
        assert lines[1:] == _recipe_check(tmp_path, "ETCH-BAD", BAD, b.recipes)
        assert ceid("ProcessProgramRefused") in host.inbox.ceids()
        assert not (b.recipes / "ETCH-BAD.yaml").exists() and not _versions(b.db, "ETCH-BAD")
        assert "ETCH-BAD" not in host.request(7, 19)

        assert host.request(7, 3, {"PPID": "ETCH-GOOD", "PPBODY": variables.Binary(GOOD)}) == 0
        assert "ETCH-GOOD" in host.request(7, 19)
        assert host.request(7, 5, "ETCH-GOOD") == {"PPID": "ETCH-GOOD", "PPBODY": GOOD}
        again = GOOD.replace(b"overetch_pct: 30", b"overetch_pct: 40")
        assert host.request(7, 3, {"PPID": "ETCH-GOOD", "PPBODY": variables.Binary(again)}) == 0
        assert host.request(7, 5, "ETCH-GOOD") == {"PPID": "ETCH-GOOD", "PPBODY": again}
        assert (b.recipes / "ETCH-GOOD.yaml").read_bytes() == again
        versions = _versions(b.db, "ETCH-GOOD")
        assert [(v["version"], v["deleted"]) for v in versions] == [(0, False), (1, False)]
        raw = host.send_and_waitfor_response(host.stream_function(7, 5)("NO-SUCH"))
        assert (raw.header.function, raw.data) == (6, b"\x01\x00")  # E5: L,0 for an unknown PPID

        # FLOW-A uses ETCH-OPEN-01: a fixed main etch breaks it, so the change is refused
        broken = (RECIPES / "ETCH-OPEN-01.yaml").read_bytes() + b"  main_etch_s: 120\n"
        n = len(host.inbox.terminal)
        assert host.request(7, 3, {"PPID": "ETCH-OPEN-01",
                                   "PPBODY": variables.Binary(broken)}) == 1
        wait_for(lambda: len(host.inbox.terminal) > n, 10.0, "the refusal's S10 text")
        assert "FLOW-A.yaml (uses ETCH-OPEN-01): flow.steps[2](ETCH-OPEN-01).etch." \
               "main_etch_s: a fixed main etch is for flow B" in host.inbox.terminal[-1]
        assert (b.recipes / "ETCH-OPEN-01.yaml").read_bytes() == \
            (RECIPES / "ETCH-OPEN-01.yaml").read_bytes()

        # a downloaded flow on the downloaded recipe is a PPID a process job can name
        flow = (b.recipes / "FLOW-Q.yaml").read_bytes().replace(b"FLOW-Q", b"FLOW-NEW") \
            .replace(b"ETCH-OPEN-01", b"ETCH-GOOD")
        assert host.request(7, 3, {"PPID": "FLOW-NEW", "PPBODY": variables.Binary(flow)}) == 0
        assert proceed(host, "CAR7", [1])["CAACK"] == 0
        pj = create_pj(host, "PJ7", "CAR7", [1], "FLOW-NEW")
        assert pj["STATUS"] == {"ACKA": True, "ERRORS": []}, pj
        assert host.request(7, 17, ["ETCH-GOOD"]) == 1  # FLOW-NEW uses it
        assert host.request(7, 17, ["FLOW-NEW"]) == 0
        # PJ7's flow is gone: its control job starts, the job ends ABORTED with the reason
        n = len(host.inbox.terminal)
        assert create_cj(host, "CJ7", ["PJ7"], ["CAR7"], auto=True)["STATUS"]["OBJACK"] == 0
        done = ceid("ControlJob.EXECUTING.COMPLETED")
        wait_for(lambda: done in host.inbox.ceids(), 10.0, "CJ7 completed")
        assert [e for e in host.inbox.events if e.ceid == done][-1].reports[-1][1] == [
            "CJ7", "COMPLETED", "aborted"]
        wait_for(lambda: len(host.inbox.terminal) > n, 10.0, "PJ7's end as S10 text")
        assert host.inbox.terminal[-1].startswith("process job PJ7 ended: PPID")
        assert httpx.get(f"{b.daemon.url}/lots/PJ7").status_code == 404

        assert host.request(7, 17, ["ETCH-GOOD", "NO-SUCH"]) == 4  # all or nothing
        assert (b.recipes / "ETCH-GOOD.yaml").exists()
        assert host.request(7, 17, ["ETCH-GOOD"]) == 0
        assert "ETCH-GOOD" not in host.request(7, 19)
        assert [v["deleted"] for v in _versions(b.db, "ETCH-GOOD")] == [False, False, True]


def test_host_terminal_text_reaches_the_operator(tmp_path: Path, sims: SimThread) -> None:
    with bench(tmp_path, sims, {}) as b:
        tap = EventTap(b.daemon.url, {}).start(kinds="gem_terminal")
        assert b.host.request(10, 3, {"TID": 0, "TEXT": "please check load port 1"}) == 0
        assert b.host.request(10, 5, {"TID": 0, "TEXT": ["line one", "line two"]}) == 0
        assert b.host.request(10, 3, {"TID": 3, "TEXT": "to another terminal"}) == 2
        msgs = httpx.get(f"{b.daemon.url}/gem/messages").json()
        assert [(m["source"], m["text"]) for m in msgs] == [
            ("host", "please check load port 1"), ("host", "line one\nline two")]
        assert b.host.inbox.ceids().count(ceid("TerminalMessageReceived")) == 2
        wait_for(lambda: len(tap.kinds("gem_terminal")) == 2, 10.0, "the daemon's event view")
        assert [e["data"]["text"] for e in tap.kinds("gem_terminal")] == [
            "please check load port 1", "line one\nline two"]

        viaform = str(Path(sys.executable).with_name("viaform"))
        out = subprocess.run([viaform, "gem", "answer", "port 1 checked → OK", "--daemon",
                              b.daemon.url], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out
        wait_for(lambda: b.host.inbox.terminal, 10.0, "the operator's answer (S10F1)")
        assert b.host.inbox.terminal == ["port 1 checked -> OK"]
        msgs = httpx.get(f"{b.daemon.url}/gem/messages").json()
        assert (msgs[-1]["source"], msgs[-1]["text"]) == ("equipment", "port 1 checked -> OK")
        empty = subprocess.run([viaform, "gem", "answer", "  ", "--daemon", b.daemon.url],
                               capture_output=True, text=True, check=False)
        assert empty.returncode != 0 and "empty" in empty.stdout + empty.stderr

        # a refusal text with the line's own symbols (the id rule's "1–32") reaches the host
        start = b.host.request(2, 41, {"RCMD": "START", "PARAMS": [
            {"CPNAME": "LOTID", "CPVAL": "L9"}, {"CPNAME": "PPID", "CPVAL": "FLOW-Q"},
            {"CPNAME": "WAFERIDS", "CPVAL": "bad id"}]})
        assert start["HCACK"] == 3, start
        wait_for(lambda: len(b.host.inbox.terminal) == 2, 10.0, "the START refusal text")
        assert "1-32 characters" in b.host.inbox.terminal[-1]
