"""Lines with several tools of a kind, on the simulators over their real transports.

A 1-2-2 line (one exposure cell, ovens ``oven`` and ``oven-2``, etchers ``etcher`` and
``etcher-2``), each tool its own simulator on one world and one clock, driven by
`viaform run` (a subprocess) through a tools.yaml whose further tools carry ``kind:``.
The truth is read where it is: each etcher's own ``JOB:COUNt?`` over a plain socket, each
oven's batch number over plain Modbus, and the simulated world (which tool ran each
step of each wafer).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from simulators.runner import SimThread

from .flowkit import (
    REPO,
    SeqProcess,
    assert_accounted,
    assert_world_sound,
    journal_alarms,
    run_cli,
    scpi,
    tool_state,
    wait_for,
    world_snapshot,
    write_lot,
    write_recipe,
    write_tools_yaml,
)
from .holdkit import ack, wait_held

LINE_122 = {"exposure": "exposure", "oven": "oven", "oven-2": "oven", "etcher": "etcher",
            "etcher-2": "etcher"}
ETCHERS, OVENS = ("etcher", "etcher-2"), ("oven", "oven-2")
SCALE = 3000.0


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(1, n + 1)]


def _oven_batch(sims: SimThread, oven: str) -> int:
    """The oven's batch number (input registers 10–11) over plain Modbus TCP."""
    host, port = sims.endpoints[oven]["tcp"]
    client = ModbusTcpClient(host, port=port, timeout=2)
    try:
        assert client.connect(), f"{oven}: Modbus connect failed"
        regs = client.read_input_registers(10, count=2, device_id=1)
        assert not regs.isError(), regs
        return (regs.registers[0] << 16) | regs.registers[1]
    finally:
        client.close()


def _etch_counts(sims: SimThread, wafers: list[str]) -> dict[str, dict[str, int]]:
    """wafer → etcher → that etcher's own JOB:COUNt? of it."""
    return {w: {e: int(scpi(sims, e, f"JOB:COUN? {w}")) for e in ETCHERS} for w in wafers}


def _viaform(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("viaform")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


@pytest.mark.timeout(120)
def test_two_ovens_and_two_etchers_share_the_work_each_wafer_once(tmp_path: Path) -> None:
    """Four lots of 5, a batch each: a batch goes to the oven that is free,
    the etchers share the wafers; every wafer exposed, cured and etched exactly once by
    the tools' own records, both ovens and both etchers used, and the journal and
    `viaform wafer show` name the tool that ran each step."""
    write_lot(tmp_path, "L0", "FLOW-A", ["Z01"])  # copies the recipes first
    write_recipe(tmp_path, "cure", {**yaml.safe_load(
        (tmp_path / "recipes" / "CURE-PBO-320.yaml").read_text())["cure"],
        "name": "CURE-5", "batch_size": 5})
    write_recipe(tmp_path, "flow", {"name": "FLOW-5", "variant": "A", "steps": [
        {"process": "exposure", "recipe": "EXP-CONCAVE-01"},
        {"process": "cure", "recipe": "CURE-5"},
        {"process": "etch", "recipe": "ETCH-OPEN-01"}]})
    # batches of 5: the second is ready long before the first cure ends, however slow
    # a loaded machine makes the exposures, so both ovens must take batches
    lots = [write_lot(tmp_path, f"L{n}", "FLOW-5", _ids(p, 5)) for n, p in enumerate("ABCD", 1)]
    wafers = [w for p in "ABCD" for w in _ids(p, 5)]
    with SimThread(time_scale=SCALE, seed=21, line=LINE_122) as sims:
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        assert "kind: etcher" in tools.read_text()
        res = run_cli(lots, tools, db, "run", 100)
        assert res.code == 0, f"viaform run failed ({res.code}):\n{res.stdout}\n{res.stderr}"
        world = world_snapshot(sims)
        counts = _etch_counts(sims, wafers)
        exposed = {w: int(scpi(sims, "exposure", f"JOB:COUN? {w}")) for w in wafers}
        batches = {o: _oven_batch(sims, o) for o in OVENS}
    states = assert_accounted(db, wafers)
    assert {w: s for w, (s, _) in states.items()} == dict.fromkeys(wafers, "PROCESSED")
    assert_world_sound(world, wafers)
    assert all(sum(c.values()) == 1 for c in counts.values()), counts
    assert set(exposed.values()) == {1}, exposed
    by_etcher = {e: [w for w in wafers if counts[w][e]] for e in ETCHERS}
    assert all(by_etcher.values()), f"an etcher was never used: {by_etcher}"
    ran = {w: world["wafers"][w]["ran"] for w in wafers}
    assert all(len(r["cure"]) == 1 and len(r["etch"]) == 1 for r in ran.values()), ran
    cured_in = {o: {w for w in wafers if ran[w]["cure"] == [o]} for o in OVENS}
    assert all(cured_in.values()), f"an oven was never used: {cured_in}"
    # each oven's own batch number is the last batch its wafers were cured in
    for oven, ws in cured_in.items():
        assert max(world["wafers"][w]["cure_batches"][0] for w in ws) == batches[oven]
    # the journal says which tool ran each step, and `viaform wafer show` says it
    w2 = by_etcher["etcher-2"][0]
    shown = _viaform("wafer", "show", w2, "--config", str(tools), "--db", str(db),
                     "--daemon", "none")
    assert shown.returncode == 0, shown.stderr
    assert "etch etcher-2" in shown.stdout and f"cure {ran[w2]['cure'][0]}" in shown.stdout
    with_tools = json.loads(_viaform("wafer", "show", w2, "--config", str(tools), "--db",
                                     str(db), "--daemon", "none", "--json").stdout)
    assert with_tools["data"]["etch.tool"] == "etcher-2"


@pytest.mark.timeout(150)
def test_a_kill_with_two_etchers_mid_etch_is_reconciled_per_etcher(tmp_path: Path) -> None:
    """`viaform run` is SIGKILLed while both etchers are etching; the rerun reconciles
    each etch with its own etcher's job records: no wafer is etched twice, all finish."""
    wafers = _ids("K", 6)
    lot = write_lot(tmp_path, "K1", "FLOW-A", wafers)
    with SimThread(time_scale=1500.0, seed=22, line=LINE_122) as sims:
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        with SeqProcess([lot], tools, db, "first") as run:
            wait_for(lambda: all(tool_state(sims, e) == "ETCHING" for e in ETCHERS)
                     or not run.alive(), 120, "both etchers etching")
            assert run.alive(), run.err.read_text()[-2000:]
            run.kill()
        busy = {e: sims.tools[e].label for e in ETCHERS}
        res = run_cli([lot], tools, db, "rerun", 100)
        assert res.code == 0, f"rerun failed ({res.code}):\n{res.stdout}\n{res.stderr}"
        world = world_snapshot(sims)
        counts = _etch_counts(sims, wafers)
    assert all(busy.values()), busy
    assert_world_sound(world, wafers)
    assert all(sum(c.values()) == 1 for c in counts.values()), counts
    for etcher, wafer in busy.items():  # the etch in flight at the kill, followed there
        assert counts[wafer][etcher] == 1, (etcher, wafer, counts[wafer])
    states = assert_accounted(db, wafers)
    assert {w: s for w, (s, _) in states.items()} == dict.fromkeys(wafers, "PROCESSED"), states


@pytest.mark.timeout(150)
def test_an_etcher_held_by_an_alarm_leaves_its_work_to_the_other(tmp_path: Path) -> None:
    """RF_REFLECTED trips etcher-2 mid-etch: its wafer is ABORTED and recorded as etched on
    etcher-2, etcher-2 is held for a person (TOOL_HELD) and gets no more wafers, and the
    other etcher etches the rest of the lot."""
    wafers = _ids("H", 6)
    lot = write_lot(tmp_path, "H1", "FLOW-A", wafers)
    with SimThread(time_scale=1500.0, seed=23, line=LINE_122) as sims:
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        with SeqProcess([lot], tools, db, "run") as run:
            wait_for(lambda: tool_state(sims, "etcher-2") == "ETCHING" or not run.alive(),
                     120, "etcher-2 etching")
            victim = sims.tools["etcher-2"].label
            sims.call(sims.faults["etcher-2"].inject, "rf_reflected")
            wait_for(lambda: tool_state(sims, "etcher-2") == "ALARM" or not run.alive(),
                     30, "etcher-2 in ALARM")
            sims.call(sims.faults["etcher-2"].clear, "rf_reflected")
            alarm_id, text = wait_held(db, "etcher-2", 60, done=lambda: not run.alive())
            assert "RF_REFLECTED" in text
            # the other etcher finishes the lot while etcher-2 stays held
            wait_for(lambda: all(int(scpi(sims, "etcher", f"JOB:COUN? {w}"))
                                 for w in wafers if w != victim) or not run.alive(),
                     120, "the other wafers etched on etcher")
            counts = _etch_counts(sims, wafers)
            ack(db, alarm_id)  # a person saw to it: the run may end
            res = run.result(60)
        world = world_snapshot(sims)
    assert res.code == 1 and f"{victim} ABORTED" in res.stderr, res.stderr[-2000:]  # not all done
    assert counts[victim] == {"etcher": 0, "etcher-2": 1}
    assert all(counts[w] == {"etcher": 1, "etcher-2": 0} for w in wafers if w != victim)
    states = assert_accounted(db, wafers)
    assert states[victim][0] == "ABORTED" and "RF_REFLECTED" in states[victim][1]
    assert all(states[w] == ("PROCESSED", "") for w in wafers if w != victim), states
    assert world["wafers"][victim]["ran"]["etch"] == ["etcher-2"]
    assert ("etcher-2", "TOOL_HELD") in {(t, k) for t, k, _ in journal_alarms(db)}
    assert_world_sound(world, wafers, processed=[w for w in wafers if w != victim])


@pytest.mark.timeout(120)
def test_mixed_cure_families_never_share_a_batch(tmp_path: Path) -> None:
    """A flow A lot and a flow B lot whose cure recipe differs: two families, never one
    batch for both; each oven's batches hold one family; queue times held."""
    cure = {"name": "CURE-PBO-300", "batch_size": 25, "o2_limit_ppm": 20,
            "segments": [{"ramp_c_per_min": 5.0, "target_c": 150.0, "hold_min": 30},
                         {"ramp_c_per_min": 3.0, "target_c": 300.0, "hold_min": 60}],
            "unload_c": 100.0, "high_limit_c": None, "n2_flow_slm": 50.0,
            "shrink_fraction": 0.25}
    write_lot(tmp_path, "MA", "FLOW-A", _ids("M", 8))  # copies the recipes first
    write_recipe(tmp_path, "cure", cure)
    write_recipe(tmp_path, "flow", {"name": "FLOW-B3", "variant": "B", "steps": [
        {"process": "exposure", "recipe": "EXP-OPEN-01"},
        {"process": "cure", "recipe": "CURE-PBO-300"},
        {"process": "etch", "recipe": "ETCH-RECESS-01"}]})
    lots = [tmp_path / "lots" / "MA.yaml", write_lot(tmp_path, "MB", "FLOW-B3", _ids("N", 8))]
    a, b = _ids("M", 8), _ids("N", 8)
    with SimThread(time_scale=SCALE, seed=24, line=LINE_122) as sims:
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        res = run_cli(lots, tools, db, "run", 100)
        assert res.code == 0, f"viaform run failed ({res.code}):\n{res.stdout}\n{res.stderr}"
        world = world_snapshot(sims)
    states = assert_accounted(db, a + b)
    assert {w: s for w, (s, _) in states.items()} == dict.fromkeys(a + b, "PROCESSED")
    assert_world_sound(world, a + b)
    batch_of = {w: world["wafers"][w]["cure_batches"][0] for w in a + b}
    assert not {batch_of[w] for w in a} & {batch_of[w] for w in b}, batch_of
    # queue times: develop end → cure start ≤ 24 h, cure end → etch start ≤ 72 h (tool s)
    for w in a + b:
        hist = world["wafers"][w]["history"]
        dev = next(h["t"] for h in hist if "DEVELOP DONE" in h["event"])
        cure = next(h["t"] for h in hist if "cure start" in h["event"])
        done = next(h["t"] for h in hist if "cure complete" in h["event"])
        etch = next(h["t"] for h in hist if "etch job" in h["event"] and "start" in h["event"])
        assert cure - dev <= 24 * 3600 and etch - done <= 72 * 3600, w


@pytest.mark.timeout(90)
def test_the_daemon_serves_each_tool_of_a_kind_with_its_own_take_and_status(
        tmp_path: Path) -> None:
    """A 1-1-2 line behind the daemon: /tools and /health list etcher-2 (kind etcher); with
    etcher-2 taken for engineering, the lot runs to its end on the other etcher only (the
    etchers' own job counts); a manual query goes to etcher-2 by its kind's vocabulary."""
    from sequencer.faces.http.app import create_app
    from sequencer.faces.http.engine_line import EngineLine
    from sequencer.faces.http.server import ServerThread
    from sequencer.line.simhost import tools_config_for
    from sequencer.store.audit import AuditLog

    from .test_daemon_engine import AUTH, TOKENS, lot_body, quick_flow

    wafers = ["D01", "D02", "D03"]
    line_112 = {"exposure": "exposure", "oven": "oven", "etcher": "etcher",
                "etcher-2": "etcher"}
    with SimThread(time_scale=SCALE, seed=25, line=line_112) as sims:
        recipes = quick_flow(tmp_path)
        db = tmp_path / "journal.db"
        cfg = tools_config_for(sims.endpoints, SCALE, journal=str(db))
        line = EngineLine(cfg, db, recipes_dir=recipes, status_poll_wall_s=0.05)
        audit = AuditLog(db)
        with ServerThread(create_app(line, AUTH, audit, recipes_dir=recipes)) as srv:
            import httpx

            with httpx.Client(base_url=srv.url, timeout=10.0, headers={
                    "Authorization": f"Bearer {TOKENS['engineer']}",
                    "X-Viaform-User": "pytest"}) as c:
                tools = {t["tool"]: t["kind"] for t in c.get("/tools").json()}
                assert tools == line_112
                taken = c.post("/tools/etcher-2/take", json={"force": False}).json()
                assert taken["engineering"] is True and taken["kind"] == "etcher"
                assert c.post("/lots", json=lot_body("LD", wafers)).status_code == 201
                wait_for(lambda: c.get("/lots/LD").json()["state"] == "PROCESS_COMPLETE",
                         60, "lot LD complete", interval_s=0.05)
                assert c.get("/health").json()["tools"] == dict.fromkeys(line_112, True)
                reply = c.post("/tools/etcher-2/commands", json={
                    "command": "raw", "args": {"line": "JOB:COUN? D01"}})
                assert reply.status_code == 200 and reply.json()["reply"] == "0", reply.text
                bad = c.post("/tools/etcher-2/commands", json={"command": "batch_no",
                                                               "args": {}})
                assert bad.status_code == 422 and "etcher-2 (etcher)" in bad.text
                shown = c.get("/wafers/D02").json()
                assert shown["data"]["etch.tool"] == "etcher"
                assert c.post("/tools/etcher-2/give").status_code == 200
        audit.close()
        counts = _etch_counts(sims, wafers)
    assert all(c == {"etcher": 1, "etcher-2": 0} for c in counts.values()), counts
