"""`viaform daemon` stopped with SIGTERM mid-lot, then started again: the lot completes.

The daemon runs as its own process (as under systemd) on the test's simulators, which
keep running while it is down, as real tools would. On SIGTERM it starts no new step,
lets the command in flight finish and journals it (no intent is left without its
outcome), closes the journal and exits 0. Started again on the same journal, it
resumes the lot; the simulated world then shows every wafer exposed, developed,
cured and etched exactly once, in that order, and back in the stocker.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE
from simulators.runner import SimThread

from .flowkit import (
    REPO,
    assert_accounted,
    assert_world_sound,
    open_intents,
    tool_state,
    wait_for,
    world_snapshot,
    write_tools_yaml,
)
from .test_daemon_engine import lot_body, quick_flow

SCALE = 3000.0
WAFERS = ["S01", "S02", "S03"]
URL_RE = re.compile(r"on (http://127\.0\.0\.1:\d+)")


@contextmanager
def daemon_process(tools: Path, db: Path, recipes: Path, tag: str) -> Iterator[
        tuple[subprocess.Popen[bytes], str]]:
    """``viaform daemon`` on 127.0.0.1:0; yields (process, its URL); killed if still alive."""
    viaform = Path(sys.executable).with_name("viaform")
    err = db.with_name(f"{tag}.err")
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [str(viaform), "daemon", "--config", str(tools), "--db", str(db), "--recipes",
             str(recipes), "--bind", "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=err_file,
            stdin=subprocess.DEVNULL, cwd=REPO, env={**os.environ, "VIAFORM_TOKENS": ""})
    try:
        def url() -> str | None:
            m = URL_RE.search(err.read_text())
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}:\n{err.read_text()}")
            return m.group(1) if m else None
        base = wait_for(url, 15.0, "the daemon's address", interval_s=0.02)
        wait_for(lambda: _healthy(base), 15.0, "the daemon to answer", interval_s=0.02)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def mid_exposure(sims: SimThread) -> bool:
    return tool_state(sims, "exposure") == "EXPOSING" and sims.tools["exposure"].chuck == "S02"


def mid_cure(sims: SimThread) -> bool:
    return tool_state(sims, "oven") == "RUNNING"


def mid_etch(sims: SimThread) -> bool:
    etcher = sims.tools["etcher"]
    return (tool_state(sims, "etcher") == "ETCHING" and etcher.wafer is not None
            and etcher.wafer.wafer_id == "S02")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stop_when", [mid_exposure, mid_cure, mid_etch],
                         ids=["mid_exposure", "mid_cure", "mid_etch"])
def test_sigterm_mid_lot_then_restart_completes_the_lot(
        tmp_path: Path, stop_when: Callable[[SimThread], bool]) -> None:
    recipes = quick_flow(tmp_path)
    db = tmp_path / "journal.db"
    with SimThread(time_scale=SCALE, seed=3) as sims:
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        with daemon_process(tools, db, recipes, "first") as (proc, base):
            reply = httpx.post(f"{base}/lots", json=lot_body("LS", WAFERS), timeout=10.0,
                               headers={CLIENT_HEADER: CLIENT_VALUE})  # open daemon
            assert reply.status_code == 201, reply.text
            wait_for(lambda: stop_when(sims), 30.0, stop_when.__name__)
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            assert proc.wait(30) == 0, db.with_name("first.err").read_text()
            stopped_in = time.monotonic() - t0
        assert stopped_in < 10.0
        assert open_intents(db) == []  # the command in flight finished and was journaled
        with daemon_process(tools, db, recipes, "second") as (proc, base):
            def done() -> dict | None:
                lot = httpx.get(f"{base}/lots/LS", timeout=5.0).json()
                return lot if lot["state"] in ("PROCESS_COMPLETE", "ABORTED", "STOPPED") \
                    else None
            lot = wait_for(done, 45.0, "the resumed lot to end", interval_s=0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        assert lot["state"] == "PROCESS_COMPLETE", lot
        states = assert_accounted(db, WAFERS)
        assert {w: s for w, (s, _) in states.items() if w in WAFERS} == dict.fromkeys(
            WAFERS, "PROCESSED")
        assert_world_sound(world_snapshot(sims), WAFERS)
