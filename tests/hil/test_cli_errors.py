"""`viaform` refuses the mistakes users make with one clear line, exit 2, nothing sent.

Each "what was seen" of issue 7's clear-errors part, run through the real
``viaform`` console script (a subprocess: the top level's error handling is
part of what is tested) against the bundled simulators over their real
transports. "Nothing sent" is checked where the truth is: the exposure cell's
and the etcher's own ``JOB:COUNt?`` for the lot's wafers, the tools' states,
and the simulated world (which must never have heard of the lot's wafers).

Permission tests must also hold when the suite runs as root, for whom file
modes do not bind: the command then runs without CAP_DAC_OVERRIDE, the
capability that lets root write a read-only file.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sequencer.store.journal import Journal
from simulators.runner import SimThread
from tests.sqlitekit import connected

from .flowkit import REPO, scpi, tool_state, world_snapshot, write_lot, write_tools_yaml

VIAFORM = Path(sys.executable).with_name("viaform")
WAFERS = ["E01", "E02"]
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE = 24, 1


def _drop_dac_override() -> None:  # runs in the child, before exec
    if os.geteuid() == 0:
        ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0)


def viaform(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
            as_plain_user: bool = False) -> subprocess.CompletedProcess[str]:
    preexec: Callable[[], None] | None = _drop_dac_override if as_plain_user else None
    return subprocess.run([str(VIAFORM), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, preexec_fn=preexec,
                          env={**os.environ, "VIAFORM_DAEMON": "none", "COLUMNS": "200",
                               **(env or {})})


def refusal(result: subprocess.CompletedProcess[str], *, journal_line: bool = True) -> str:
    """The one error line of a refused command (after the journal line, when printed)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    if journal_line:
        assert lines[0].startswith("viaform: journal /"), lines
        lines = lines[1:]
    assert len(lines) == 1, result.stderr
    return lines[0]


def assert_nothing_sent(sims: SimThread) -> None:
    """The tools never accepted a job for the lot's wafers, and the world never saw them."""
    for wafer in WAFERS:
        assert scpi(sims, "exposure", f"JOB:COUN? {wafer}") == "0"
        assert scpi(sims, "etcher", f"JOB:COUN? {wafer}") == "0"
    assert tool_state(sims, "exposure") == "IDLE" and tool_state(sims, "etcher") == "IDLE"
    assert not set(WAFERS) & set(world_snapshot(sims)["wafers"]), "the world was told"


@pytest.fixture
def site(tmp_path: Path, fault_sims: SimThread) -> tuple[Path, Path, SimThread]:
    """(tools.yaml for the simulators, a lot of WAFERS, the simulators)."""
    tools = write_tools_yaml(tmp_path / "tools.yaml", fault_sims, tmp_path / "viaform.db")
    return tools, write_lot(tmp_path, "LOT-E", "FLOW-A", WAFERS), fault_sims


def run(lot: Path, tools: Path, *more: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return viaform("run", str(lot), "--config", str(tools), "--plain", *more, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- tools.yaml
def _edit(tools: Path, change: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(tools.read_text())
    change(doc)
    tools.write_text(yaml.safe_dump(doc, sort_keys=False))


def _line(tools: Path, text: str) -> int:
    return next(n for n, s in enumerate(tools.read_text().splitlines(), 1) if text in s)


@pytest.mark.parametrize(("change", "key_path", "needle", "words"), [
    (lambda d: d.update(time_scal=d.pop("time_scale")), "time_scal", "time_scal:",
     "unknown key (did you mean time_scale?)"),
    (lambda d: d["exposure"].update(timout_s=d["exposure"].pop("timeout_s")),
     "exposure.timout_s", "timout_s:", "unknown key (did you mean timeout_s?)"),
    (lambda d: d.update(jornal=d.pop("journal")), "jornal", "jornal:",
     "unknown key (did you mean journal?)"),
    (lambda d: d.update(exposre=d.pop("exposure")), "exposre", "exposre:",
     "unknown key (did you mean exposure?)"),
    (lambda d: d["oven"].update(port="70 20"), "oven.port", "port: 70 20",
     "valid integer"),
])
@pytest.mark.timeout(60)
def test_a_wrong_tools_file_is_refused_before_any_tool(site, change, key_path, needle,
                                                       words) -> None:
    tools, lot, sims = site
    _edit(tools, change)
    line = refusal(run(lot, tools), journal_line=False)
    assert line.startswith(f"viaform: {tools}:{_line(tools, needle)}: {key_path}: "), line
    assert words in line
    assert_nothing_sent(sims)
    assert not (tools.parent / "viaform.db").exists(), "no journal may be made"


# ---------------------------------------------------------------- the journal
@pytest.mark.timeout(60)
def test_a_damaged_journal_is_refused_before_any_tool(site) -> None:
    tools, lot, sims = site
    db = tools.parent / "damaged.db"
    Journal(db).close()
    data = bytearray(db.read_bytes())
    data[100:] = b"\xab" * (len(data) - 100)  # keep the header, spoil every page
    db.write_bytes(bytes(data))
    line = refusal(run(lot, tools, "--db", str(db)))
    assert line == (f"viaform: journal {db} is damaged (database disk image is malformed): "
                    "move it aside or restore it; nothing was sent to the tools")
    assert_nothing_sent(sims)


@pytest.mark.timeout(60)
def test_a_file_that_is_no_journal_is_refused(site) -> None:
    tools, lot, sims = site
    db = tools.parent / "notes.txt"
    db.write_text("these are my notes, not a journal\n" * 200)
    line = refusal(run(lot, tools, "--db", str(db)))
    assert line.startswith(f"viaform: journal {db} is damaged (file is not a database)")
    assert_nothing_sent(sims)


@pytest.mark.timeout(60)
def test_a_journal_directory_that_cannot_be_made(site) -> None:
    tools, lot, sims = site
    (tools.parent / "afile").write_text("in the way")
    db = tools.parent / "afile" / "sub" / "j.db"
    line = refusal(run(lot, tools, "--db", str(db)))
    assert line.startswith(f"viaform: journal {db}: cannot create its directory ")
    assert "nothing was sent to the tools" in line
    assert_nothing_sent(sims)


@pytest.mark.timeout(60)
def test_a_read_only_journal_directory(site) -> None:
    tools, lot, sims = site
    ro = tools.parent / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = refusal(run(lot, tools, "--db", str(ro / "j.db"), as_plain_user=True))
    finally:
        ro.chmod(0o755)
    assert line == (f"viaform: journal {ro / 'j.db'}: its directory {ro} is read-only; "
                    "nothing was sent to the tools")
    assert_nothing_sent(sims)


@pytest.mark.timeout(60)
def test_a_read_only_journal_file(site) -> None:
    tools, lot, sims = site
    db = tools.parent / "ro.db"
    Journal(db).close()
    for leftover in (db.with_name("ro.db-wal"), db.with_name("ro.db-shm")):
        leftover.unlink(missing_ok=True)
    db.chmod(0o444)
    line = refusal(run(lot, tools, "--db", str(db), as_plain_user=True))
    assert line.startswith(f"viaform: journal {db}: cannot write it (")
    assert "check the permissions" in line and "nothing was sent to the tools" in line
    assert_nothing_sent(sims)


@pytest.mark.timeout(60)
def test_a_lot_reusing_wafer_ids_of_another_lot(site) -> None:
    tools, lot, sims = site
    db = tools.parent / "shared.db"
    journal = Journal(db)
    journal.add_lot("LOT-OLD", "FLOW-A", [(1, "E01"), (2, "E02"), (3, "E03")])
    journal.close()
    line = refusal(run(lot, tools, "--db", str(db)))
    assert line == (f"viaform: lot LOT-E: wafer ids E01, E02 already belong to lot LOT-OLD in "
                    f"journal {db}; use new wafer ids (nothing was sent to the tools)")
    assert_nothing_sent(sims)
    with connected(db) as con:
        rows = con.execute("SELECT lot_id FROM lots").fetchall()
    assert rows == [("LOT-OLD",)], "the refused lot must not be journaled"


def test_add_lot_refuses_reused_wafer_ids_but_a_rerun_of_the_lot_is_fine(tmp_path) -> None:
    journal = Journal(tmp_path / "j.db")
    assert journal.add_lot("L1", "FLOW-A", [(1, "A01"), (2, "A02")])
    assert not journal.add_lot("L1", "FLOW-A", [(1, "A01"), (2, "A02")])  # resume
    journal.refuse_foreign_wafers("L1", ["A01", "A02"])
    with pytest.raises(ValueError, match=r"lot L2: wafer id A02 already belongs to lot L1"):
        journal.add_lot("L2", "FLOW-A", [(1, "A02"), (2, "B01")])
    assert journal.wafer_owners(["A01", "A02", "B01"]) == {"A01": "L1", "A02": "L1"}
    journal.close()


# ---------------------------------------------------------------- unreachable things
def _closed_ports(n: int) -> list[int]:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _closed_tools(path: Path, journal: str) -> Path:
    exp, etch, oven, ctl = _closed_ports(4)
    path.write_text(yaml.safe_dump({
        "time_scale": 100, "journal": journal,
        "exposure": {"resource": f"TCPIP0::127.0.0.1::{exp}::SOCKET", "timeout_s": 0.5},
        "etcher": {"url": f"socket://127.0.0.1:{etch}", "timeout_s": 0.5},
        "oven": {"transport": "tcp", "host": "127.0.0.1", "port": oven, "timeout_s": 0.5},
        "sim_control": {"host": "127.0.0.1", "port": ctl},
    }))
    return path


@pytest.mark.timeout(60)
def test_unreachable_tools_at_start_are_one_line(tmp_path) -> None:
    tools = _closed_tools(tmp_path / "tools.yaml", "j.db")
    lot = write_lot(tmp_path, "LOT-E", "FLOW-A", WAFERS)
    result = run(lot, tools)
    line = refusal(result)
    entries = yaml.safe_load(tools.read_text())
    assert line.startswith("viaform: cannot reach exposure: ")
    for address in (entries["exposure"]["resource"], entries["etcher"]["url"],
                    f"127.0.0.1:{entries['oven']['port']}"):
        assert address in line
    assert line.endswith("nothing was sent to the tools")
    with connected(tmp_path / "j.db") as con:
        rows = con.execute("SELECT * FROM lots").fetchall()
    assert rows == [], "nothing may be journaled for a run that never started"


@pytest.mark.timeout(60)
def test_unreachable_simulated_world_is_one_line(site) -> None:
    tools, lot, sims = site
    (port,) = _closed_ports(1)
    _edit(tools, lambda d: d["sim_control"].update(port=port))
    line = refusal(run(lot, tools))
    assert line.startswith(f"viaform: simulators' control port 127.0.0.1:{port} unreachable")
    assert_nothing_sent(sims)


@pytest.mark.timeout(60)
def test_the_same_lot_again_passes_the_wafer_check(tmp_path) -> None:
    """A rerun of a lot (same id, same wafers) is a resume: it gets past the journal's
    checks, here as far as the (unreachable) tools."""
    tools = _closed_tools(tmp_path / "tools.yaml", "j.db")
    journal = Journal(tmp_path / "j.db")
    journal.add_lot("LOT-E", "FLOW-A", [(1, "E01"), (2, "E02")])
    journal.close()
    line = refusal(run(write_lot(tmp_path, "LOT-E", "FLOW-A", WAFERS), tools))
    assert line.startswith("viaform: cannot reach exposure: ")


# ---------------------------------------------------------------- the journal's place
@pytest.mark.timeout(60)
def test_the_journal_is_found_from_any_working_directory(tmp_path) -> None:
    conf = tmp_path / "site" / "configs"
    conf.mkdir(parents=True)
    tools = _closed_tools(conf / "tools.yaml", "../var/line.db")
    lot = write_lot(tmp_path, "LOT-E", "FLOW-A", WAFERS)
    expected = tmp_path / "site" / "var" / "line.db"
    for cwd in (REPO, tmp_path, conf):
        result = run(lot, tools, cwd=cwd)
        assert result.stderr.splitlines()[0] == f"viaform: journal {expected}"
    assert expected.exists()
    assert not (REPO / "var" / "line.db").exists() and not (tmp_path / "var").exists()
    # --db is the user's own path: relative to where it is typed
    result = run(lot, tools, "--db", "mine.db", cwd=tmp_path)
    assert result.stderr.splitlines()[0] == f"viaform: journal {tmp_path / 'mine.db'}"


# ---------------------------------------------------------------- the daemon and the top level
@pytest.mark.timeout(60)
def test_the_daemon_refuses_a_damaged_journal(site) -> None:
    tools, _, sims = site
    db = tools.parent / "bad.db"
    db.write_bytes(b"\x00garbage" * 512)
    result = viaform("daemon", "--config", str(tools), "--db", str(db), "--bind",
                     "127.0.0.1:0")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    first, second = result.stderr.strip().splitlines()
    assert first == f"viaform: journal {db}"
    assert second.startswith(f"viaform daemon: journal {db} is damaged (")
    assert_nothing_sent(sims)


@pytest.mark.timeout(60)
def test_an_escaped_error_is_one_line_and_debug_shows_the_traceback(tmp_path) -> None:
    db = tmp_path / "bad.db"
    db.write_bytes(b"\x00garbage" * 512)
    plain = viaform("wafer", "show", "E01", "--db", str(db))
    assert plain.returncode != 0
    lines = plain.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("viaform: "), plain.stderr
    assert "Traceback" not in plain.stderr
    debug = viaform("wafer", "show", "E01", "--db", str(db), env={"VIAFORM_DEBUG": "1"})
    assert debug.returncode == plain.returncode
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == lines[0]
