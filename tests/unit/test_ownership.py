"""The owner-of-the-line locks (sequencer/line/ownership.py): real flock on real files.

Conflicts are checked both inside one process (flock is per open file description, so a
second claim here must fail too) and across processes; a SIGKILLed owner's locks are
released by the kernel, and its leftover text is never reported as an owner.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sequencer.line.config import ToolsConfig
from sequencer.line.ownership import (
    ClaimError,
    LineOwned,
    claim_line,
    journal_lock_path,
    lock_dir,
    manual_claim,
    tool_address,
    tool_lock_path,
    tool_owner,
)


def cfg_for(tmp_path: Path, *, oven_port: int = 5020, exposure_host: str = "127.0.0.1",
            etcher_url: str = "socket://127.0.0.1:5026") -> ToolsConfig:
    entries: dict[str, dict[str, Any]] = {
        "exposure": {"resource": f"TCPIP0::{exposure_host}::5025::SOCKET"},
        "etcher": {"url": etcher_url},
        "oven": {"transport": "tcp", "host": "127.0.0.1", "port": oven_port},
    }
    return ToolsConfig(path=tmp_path / "tools.yaml", time_scale=1.0,
                       journal=tmp_path / "j.db", entries=entries)


@pytest.fixture(autouse=True)
def _locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "locks"
    monkeypatch.setenv("VIAFORM_LOCK_DIR", str(d))
    return d


def test_second_claim_on_the_same_journal_is_refused_in_one_process(tmp_path: Path) -> None:
    a = cfg_for(tmp_path)
    b = cfg_for(tmp_path, oven_port=6020, exposure_host="10.0.0.9",
                etcher_url="socket://10.0.0.9:5026")  # other tools, same journal
    with claim_line(a, tmp_path / "j.db", "viaform run L1") as first:
        with pytest.raises(LineOwned) as err:
            claim_line(b, tmp_path / "j.db", "viaform run L2")
        msg = str(err.value)
        assert "\n" not in msg
        assert msg.startswith(f"the journal {os.path.realpath(tmp_path / 'j.db')} is owned by "
                              f"viaform run L1 (pid {os.getpid()}, since ")
        assert msg.endswith("): refused; nothing was sent")
        assert err.value.owner == first.owner
        # all or nothing: the refused claim holds none of b's tools
        assert tool_owner(b, "oven") is None
    # released: a new claim succeeds, the files are emptied
    with claim_line(b, tmp_path / "j.db", "viaform run L2"):
        pass
    assert journal_lock_path(tmp_path / "j.db").read_text() == ""


def test_same_tools_other_journal_is_refused_naming_the_tool(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    with claim_line(cfg, tmp_path / "j.db", "viaform daemon", url="http://127.0.0.1:8750"):
        with pytest.raises(LineOwned) as err:
            claim_line(cfg, tmp_path / "other.db", "viaform run L2")
        assert str(err.value).startswith("the exposure (tcp:loopback:5025) is owned by viaform "
                                         "daemon (pid ")
        assert "at http://127.0.0.1:8750" in str(err.value)
        assert err.value.owner.is_daemon
        # the other journal was not left locked by the refused claim
        with claim_line(ToolsConfig(cfg.path, 1.0, tmp_path / "x.db", {}),
                        tmp_path / "other.db", "probe"):
            pass


def test_loopback_spellings_are_one_tool(tmp_path: Path) -> None:
    entry = {"transport": "tcp", "host": "localhost", "port": 5020}
    assert tool_address("oven", entry) == tool_address(
        "oven", {"transport": "tcp", "host": "127.0.0.1", "port": 5020})
    assert tool_address("exposure", {"resource": "tcpip1::[::1]::5025::socket"}) == \
        "tcp:loopback:5025"
    assert tool_address("etcher", {"url": "rfc2217://LocalHost:5026"}) == "tcp:loopback:5026"
    assert tool_address("oven", {"transport": "tcp", "host": "10.0.0.5", "port": 502}) != \
        tool_address("oven", {"transport": "tcp", "host": "10.0.0.6", "port": 502})
    # a symlinked device path is the device
    dev = tmp_path / "ttyUSB0"
    dev.write_text("")
    link = tmp_path / "by-id"
    link.symlink_to(dev)
    assert tool_address("oven", {"transport": "rtu", "serial_port": str(link)}) == \
        tool_address("etcher", {"url": str(dev)}) == f"serial:{dev}"
    with claim_line(cfg_for(tmp_path, exposure_host="localhost"), tmp_path / "j.db", "A"):
        with pytest.raises(LineOwned):
            claim_line(cfg_for(tmp_path), tmp_path / "k.db", "B")


def test_manual_claim_and_tool_owner(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    assert tool_owner(cfg, "oven") is None
    with manual_claim(cfg, "oven", "viaform tool oven reset"):
        owner = tool_owner(cfg, "oven")
        assert owner is not None and owner.command == "viaform tool oven reset"
        with pytest.raises(LineOwned) as err:
            claim_line(cfg, tmp_path / "j.db", "viaform run L1")
        assert "viaform tool oven reset" in str(err.value)
        assert tool_owner(cfg, "exposure") is None
    with claim_line(cfg, tmp_path / "j.db", "viaform run L1"):
        with pytest.raises(LineOwned) as err:
            manual_claim(cfg, "oven")
        assert err.value.owner.is_run
        owner = tool_owner(cfg, "etcher")
        assert owner is not None and owner.command == "viaform run L1"
        assert owner.journal == os.path.realpath(tmp_path / "j.db")
    assert tool_owner(cfg, "oven") is None


def test_lock_dir_is_shared_and_files_are_writable_by_all(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = tool_lock_path("oven", {"transport": "tcp", "host": "127.0.0.1", "port": 1})
        with manual_claim(cfg_for(tmp_path), "oven"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock_dir().stat().st_mode) == 0o1777
    assert stat.S_IMODE(tool_lock_path("oven", cfg_for(tmp_path).entries["oven"])
                        .stat().st_mode) == 0o666
    assert path.parent == lock_dir()


def test_unusable_lock_dir_is_one_clear_line(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("VIAFORM_LOCK_DIR", str(blocker / "locks"))
    with pytest.raises(ClaimError) as err:
        claim_line(cfg_for(tmp_path), tmp_path / "j.db", "viaform run L1")
    assert not isinstance(err.value, LineOwned)
    assert str(blocker / "locks") in str(err.value) and "VIAFORM_LOCK_DIR" in str(err.value)
    # nothing left locked: the journal is free
    with claim_line(ToolsConfig(tmp_path, 1.0, tmp_path / "j.db", {}), tmp_path / "j.db", "x"):
        pass


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sequencer.line.config import ToolsConfig
    from sequencer.line.ownership import claim_line
    tmp = Path(sys.argv[1])
    cfg = ToolsConfig(tmp / "tools.yaml", 1.0, tmp / "j.db",
                      {"oven": {"transport": "tcp", "host": "127.0.0.1", "port": 5020}})
    claim_line(cfg, tmp / "j.db", "viaform run CHILD")
    print("claimed", flush=True)
    sys.stdin.read()
""")


def test_a_sigkilled_owner_releases_everything(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ}, cwd=Path(__file__).resolve().parents[2])
    try:
        assert child.stdout is not None and child.stdout.readline() == "claimed\n"
        owner = tool_owner(cfg, "oven")
        assert owner is not None and owner.pid == child.pid
        assert owner.command == "viaform run CHILD"
        with pytest.raises(LineOwned) as err:
            claim_line(cfg, tmp_path / "other.db", "viaform run L2")
        assert f"pid {child.pid}" in str(err.value) and "(tcp:loopback:5020)" in str(err.value)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    # the kernel dropped the locks; the child's text is still in the files, but is not
    # believed: nobody owns the oven, and the journal can be claimed
    assert "CHILD" in journal_lock_path(tmp_path / "j.db").read_text()
    assert tool_owner(cfg, "oven") is None
    with claim_line(cfg, tmp_path / "j.db", "viaform run L3") as claim:
        assert "L3" in journal_lock_path(tmp_path / "j.db").read_text()
        assert claim.owner.pid == os.getpid()


def test_tools_of_a_kind_are_each_read_as_their_kind_and_locked_apart(tmp_path: Path) -> None:
    """``exposure-2`` and ``oven-2`` are read as an exposure cell and an oven (their own
    addresses), so a 2-2-2 line is claimed whole, and each extra tool is its own lock."""
    classic = cfg_for(tmp_path)
    cfg = ToolsConfig(path=classic.path, time_scale=1.0, journal=classic.journal, entries={
        **classic.entries,
        "exposure-2": {"kind": "exposure", "resource": "TCPIP0::127.0.0.1::5035::SOCKET"},
        "oven-2": {"kind": "oven", "transport": "tcp", "host": "127.0.0.1", "port": 5030},
        "etcher-2": {"kind": "etcher", "url": "socket://127.0.0.1:5036"}})
    assert cfg.kinds["oven-2"] == "oven"
    with claim_line(cfg, tmp_path / "j.db", "viaform daemon"):
        for tool, address in (("exposure-2", "tcp:loopback:5035"),
                              ("oven-2", "tcp:loopback:5030")):
            owner = tool_owner(cfg, tool)
            assert owner is not None and owner.command == "viaform daemon"
            assert tool_address(cfg.kinds[tool], cfg.entries[tool]) == address
        with pytest.raises(LineOwned, match="oven-2"):
            manual_claim(cfg, "oven-2")
    with manual_claim(cfg, "oven-2"):
        assert tool_owner(cfg, "oven") is None  # the other oven is free
