"""What the GEM tests share: `viaform daemon` with ``gem:`` on the simulators, and a host.

The host is secsgem's own ``GemHostHandler`` (active HSMS) that records every S6F11,
S5F1 and S10F1 it receives, in order, with the time it arrived. ``request`` sends one
primary and returns the decoded reply (None after T3).
"""

from __future__ import annotations

import os
import re
import signal
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

from sequencer.faces.gem import e30_functions
from sequencer.faces.gem.tables import build
from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE
from tests.hil.flowkit import REPO, wait_for, write_tools_yaml
from tests.hil.test_daemon_sigterm import _healthy
from tests.sqlitekit import connected

SCALE = 3000.0  # tool seconds per wall second: a lot of a few wafers in seconds
TOOLS = ["exposure", "oven", "etcher"]  # line.tools(): the per-tool SV and ALID index
T = build(TOOLS)
V = {name: row.vid for name, row in T.by_name.items()}
HEADERS = {CLIENT_HEADER: CLIENT_VALUE}  # the daemon is open (loopback, no tokens)

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
    e30_functions.install(settings)  # S2F31/S2F32, which secsgem lacks, for the host too
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


def lot_state(base: str, lot: str) -> str | None:
    r = httpx.get(f"{base}/lots/{lot}", timeout=5.0)
    return r.json()["state"] if r.status_code == 200 else None


def stop(d: Daemon) -> None:
    """SIGTERM, as systemd stops it: a graceful stop, exit 0."""
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(30) == 0, d.err.read_text()


# ---------------------------------------------------------------- reports the tests use
def define_reports(host: RecordingHost, tables: Any) -> None:
    """R1 substrate (id, state, previous) on every E90 event, R2 job (lot, state, previous)
    on every E40 event, R3 the wafer's results on Substrate complete; every event and
    every alarm enabled."""
    from sequencer.faces.gem.tables import JOB_EVENTS, SUBSTRATE_EVENTS

    v = {name: row.vid for name, row in tables.by_name.items()}
    assert host.request(2, 33, {"DATAID": 1, "DATA": [
        {"RPTID": 1, "VID": [v["SubstID"], v["SubstState"], v["SubstPreviousState"]]},
        {"RPTID": 2, "VID": [v["LotID"], v["JobState"], v["JobPreviousState"]]},
        {"RPTID": 3, "VID": [v["SubstID"], v["DepthUm"], v["ResidualUm"],
                             v["ResidualAfterCureUm"], v["EtchTimeS"], v["RemovedUm"],
                             v["Open"]]}]}) == 0
    subst = [tables.event_by_name[n].ceid for n in [*SUBSTRATE_EVENTS.values(),
                                                    "Substrate.StateChanged"]]
    jobs = [tables.event_by_name[n].ceid for n in [*JOB_EVENTS.values(), "Job.StateChanged"]]
    complete = tables.event_by_name["Substrate.complete.IN_PROCESS.PROCESSED"].ceid
    links = ([{"CEID": c, "RPTID": [1]} for c in subst]
             + [{"CEID": c, "RPTID": [2]} for c in jobs])
    assert host.request(2, 35, {"DATAID": 2, "DATA": links}) == 0
    assert host.request(2, 35, {"DATAID": 3, "DATA": [{"CEID": complete, "RPTID": [3]}]}) == 0
    assert host.request(2, 35, {"DATAID": 4, "DATA": [{"CEID": complete, "RPTID": [3]}]}) == 3
    assert host.request(2, 37, {"CEED": True, "CEID": []}) == 0
    assert host.request(5, 3, {"ALED": 0x80, "ALID": []}) == 0


def host_transitions(host: RecordingHost) -> list[tuple[str, str, str]]:
    """(subject, src, dst) of every substrate and job event the host got (R1/R2), in order."""
    out = []
    for e in list(host.inbox.events):
        for rptid, values in e.reports:
            if rptid in (1, 2) and values[2]:  # a job's creation has no previous state
                out.append((str(values[0]), str(values[2]), str(values[1])))
    return out


def journal_transitions(db: Path, subjects: set[str]) -> list[tuple[str, str, str]]:

    with connected(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT subject, src, dst FROM transitions WHERE kind IN "
                           "('wafer', 'job') ORDER BY id").fetchall()
    return [(s, a, b) for s, a, b in rows if s in subjects and a]


# ---------------------------------------------------------------- raw HSMS, for bad input
class RawHsms:
    """A plain TCP client speaking HSMS frames by hand (no secsgem), for malformed input."""

    HEADER = "!HBBBBL"

    def __init__(self, port: int, timeout_s: float = 5.0) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.system = 100

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frame(self, session: int, stream: int, function: int, ptype: int, stype: int,
              body: bytes = b"", wbit: bool = False, system: int | None = None) -> bytes:
        import struct

        self.system += 1
        head = struct.pack(self.HEADER, session, stream | (0x80 if wbit else 0), function,
                           ptype, stype, self.system if system is None else system)
        return struct.pack("!L", 10 + len(body)) + head + body

    def read(self, timeout_s: float = 5.0) -> tuple[tuple[int, ...], bytes] | None:
        """(header fields, body) of the next frame; None if the peer closed."""
        import struct

        self.sock.settimeout(timeout_s)
        head = self._exact(4)
        if head is None:
            return None
        data = self._exact(struct.unpack("!L", head)[0])
        if data is None:
            return None
        return struct.unpack(self.HEADER, data[:10]), data[10:]

    def _exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def closed(self, timeout_s: float) -> bool:
        """True if the peer closes the connection within ``timeout_s`` (data is skipped)."""
        deadline = time.monotonic() + timeout_s
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False
