"""What the GEM tests share: `viaform daemon` with ``gem:`` on the simulators, and a host.

The host is secsgem's own ``GemHostHandler`` (active HSMS) that records every S6F11,
S5F1 and S10F1 it receives, in order, with the time it arrived. ``request`` sends one
primary and returns the decoded reply (None after T3).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import secsgem.common
import secsgem.gem
import secsgem.hsms
import yaml

from tests.hil.flowkit import REPO, wait_for, write_tools_yaml

URL_RE = re.compile(r"on (http://127\.0\.0\.1:\d+)")
GEM_RE = re.compile(r"SECS/GEM \(HSMS passive\) on [\d.]+:(\d+)")


@dataclass
class Received:
    t: float  # time.monotonic() at receipt
    ceid: int
    reports: list[tuple[int, list[Any]]]


@dataclass
class Inbox:
    events: list[Received] = field(default_factory=list)
    alarms: list[tuple[float, int, int, str]] = field(default_factory=list)  # t, ALCD, ALID, text
    terminal: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ceids(self) -> list[int]:
        with self.lock:
            return [e.ceid for e in self.events]


class RecordingHost(secsgem.gem.GemHostHandler):  # type: ignore[misc]
    """secsgem's GEM host, recording what the equipment sends."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.inbox = Inbox()

    def _on_s06f11(self, handler: Any, message: Any) -> Any:
        f = self.settings.streams_functions.decode(message)
        got = Received(time.monotonic(), int(f.CEID.get()),
                       [(int(r["RPTID"]), list(r["V"])) for r in f.RPT.get()])
        with self.inbox.lock:
            self.inbox.events.append(got)
        return self.stream_function(6, 12)(0)

    def _on_s05f01(self, handler: Any, message: Any) -> Any:
        f = self.settings.streams_functions.decode(message)
        with self.inbox.lock:
            self.inbox.alarms.append((time.monotonic(), int(f.ALCD.get()[0] if isinstance(
                f.ALCD.get(), list) else f.ALCD.get()), int(f.ALID.get()), str(f.ALTX.get())))
        return self.stream_function(5, 2)(0)

    def _on_s10f01(self, handler: Any, message: Any) -> Any:
        f = self.settings.streams_functions.decode(message)
        with self.inbox.lock:
            self.inbox.terminal.append(str(f.TEXT.get()))
        return self.stream_function(10, 2)(0)

    def request(self, stream: int, function: int, data: Any = None) -> Any:
        reply = self.send_and_waitfor_response(self.stream_function(stream, function)(data))
        if reply is None:
            return None
        if reply.header.function == 0:
            return "abort"
        return self.settings.streams_functions.decode(reply).get()


@contextmanager
def gem_host(port: int, timeout_s: float = 10.0, t3: float = 10.0) -> Iterator[RecordingHost]:
    settings = secsgem.hsms.HsmsSettings(
        address="127.0.0.1", port=port, connect_mode=secsgem.hsms.HsmsConnectMode.ACTIVE,
        device_type=secsgem.common.DeviceType.HOST, session_id=0, t3=t3)
    host = RecordingHost(settings)
    host.enable()
    try:
        assert host.waitfor_communicating(timeout_s), "no S1F13/F14 with the equipment"
        yield host
    finally:
        host.disable()


def gem_tools_yaml(tmp_path: Path, sims: Any, db: Path, **gem: Any) -> Path:
    path = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
    doc = yaml.safe_load(path.read_text())
    doc["gem"] = {"enabled": True, "port": 0, "initial_control_state": "ONLINE_REMOTE",
                  "mdln": "viaform-test", "softrev": "9", **gem}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    url: str
    gem_port: int
    err: Path


@contextmanager
def gem_daemon(tools: Path, db: Path, recipes: Path, tag: str) -> Iterator[Daemon]:
    """``viaform daemon`` (HTTP on 127.0.0.1:0, HSMS on the gem port); killed if alive."""
    viaform = Path(sys.executable).with_name("viaform")
    err = db.with_name(f"{tag}.err")
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [str(viaform), "daemon", "--config", str(tools), "--db", str(db), "--recipes",
             str(recipes), "--bind", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
            stderr=err_file, stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "VIAFORM_TOKENS": ""})
    try:
        def found() -> tuple[str, int] | None:
            text = err.read_text()
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}:\n{text}")
            url, port = URL_RE.search(text), GEM_RE.search(text)
            return (url.group(1), int(port.group(1))) if url and port else None
        url, port = wait_for(found, 20.0, "the daemon's addresses", interval_s=0.02)
        wait_for(lambda: _healthy(url), 20.0, "the daemon to answer", interval_s=0.02)
        yield Daemon(proc, url, port, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
