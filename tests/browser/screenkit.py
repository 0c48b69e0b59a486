"""The operator's screen under test: a daemon on the simulators, and the system Chromium.

``daemon_on_sims`` serves ``create_app`` over an ``EngineLine`` driving a test's own
``SimThread`` (as tests/hil/test_daemon_engine.py does), with tokens for the three
roles, on 127.0.0.1 (a given port, so a test can restart it on the same address).
``launch`` starts Debian's Chromium through Playwright with the flags this machine
needs; there is no fall-back: a missing browser fails the test, loudly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Playwright
from sse_starlette.sse import AppStatus

from sequencer.faces.gem.config import bind_listen
from sequencer.faces.gem.face import GemFace
from sequencer.faces.http.app import create_app
from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE, AuthConfig, parse_env
from sequencer.faces.http.engine_line import EngineLine
from sequencer.faces.http.server import bind_socket, make_server
from sequencer.line.simhost import tools_config_for
from sequencer.line.tools_schema import Gem
from sequencer.store.audit import AuditLog
from simulators.runner import SimThread
from tests.hil.flowkit import wait_for
from tests.hil.test_daemon_engine import lot_body, quick_flow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screen"
TOKENS = {"operator": "op-token-0123456789abcdef", "technician": "tech-token-0123456789abc",
          "engineer": "eng-token-0123456789abcde"}
AUTH = parse_env(",".join(f"{role[:4]}:{role}:{tok}" for role, tok in TOKENS.items()))
PANEL = {"width": 1280, "height": 800}


def launch(pw: Playwright) -> Browser:
    """The system Chromium, headless. Fails (never skips) when it is not installed."""
    assert CHROMIUM.exists(), (f"{CHROMIUM} is missing: `make test` installs Debian's "
                               f"chromium when run as root (apt-get install chromium)")
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                              headless=True)


@dataclass
class Daemon:
    url: str
    port: int
    sims: SimThread
    db: Path
    line: EngineLine
    recipes: Path

    def api(self, role: str = "engineer") -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, headers={
            "Authorization": f"Bearer {TOKENS[role]}", CLIENT_HEADER: CLIENT_VALUE})

    def submit(self, lot_id: str, wafers: list[str], flow: str = "FLOW-Q") -> None:
        with self.api("operator") as c:
            r = c.post("/lots", json=lot_body(lot_id, wafers, flow))
            assert r.status_code == 201, r.text

    def lot(self, lot_id: str) -> dict[str, Any]:
        with self.api("operator") as c:
            return dict(c.get(f"/lots/{lot_id}").json())

    def tool(self, tool: str) -> dict[str, Any]:
        with self.api("operator") as c:
            return dict(c.get(f"/tools/{tool}").json())

    def wait_lot(self, lot_id: str, states: set[str], timeout_s: float = 30.0
                 ) -> dict[str, Any]:
        def state() -> dict[str, Any] | None:
            lot = self.lot(lot_id)
            return lot if lot["state"] in states else None
        return dict(wait_for(state, timeout_s, f"lot {lot_id} in {states}", interval_s=0.05))


@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1:``port`` (0: any free port) in a thread; its URL."""
    sock = bind_socket("127.0.0.1", port)
    server = make_server(app, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="screen-daemon", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 10.0, "the daemon started")
    assert server.started, "the daemon did not start (see the log above)"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        AppStatus.should_exit = True  # off the main thread, nothing else ends SSE streams
        server.should_exit = True
        thread.join(15.0)
        sock.close()
        assert not thread.is_alive(), "the daemon did not stop"


@contextmanager
def daemon_on_sims(tmp_path: Path, sims: SimThread, auth: AuthConfig = AUTH,
                   port: int = 0, gem: bool = False) -> Iterator[Daemon]:
    """The daemon on ``sims``, journal ``tmp_path/journal.db`` (kept across restarts);
    ``gem``: with the real SECS/GEM face (HSMS on a free port, ONLINE REMOTE)."""
    recipes = quick_flow(tmp_path)
    db = tmp_path / "journal.db"
    cfg = tools_config_for(sims.endpoints, sims.clock.time_scale, journal=str(db))
    line = EngineLine(cfg, db, recipes_dir=recipes, status_poll_wall_s=0.05)
    audit = AuditLog(db)
    faces: list[Any] = []
    if gem:
        settings = Gem(enabled=True, port=0, initial_control_state="ONLINE_REMOTE")
        faces.append(GemFace(settings, bind_listen(settings), db, audit, recipes))
    try:
        with serving(create_app(line, auth, audit, recipes_dir=recipes, journal=db,
                                faces=faces), port) as url:
            yield Daemon(url, int(url.rsplit(":", 1)[1]), sims, db, line, recipes)
    finally:
        audit.close()


def wait_until(pred: Any, timeout_s: float, what: str) -> Any:
    """flowkit's ``wait_for`` at a pace that leaves the browser and the daemon the CPU."""
    return wait_for(pred, timeout_s, what, interval_s=0.02)
