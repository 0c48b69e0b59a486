"""``viaform daemon`` itself serves the operator's screen: its pages, its static files from
the installed package, and a wafer's plots from the daemon's journal (the CLI hands the
journal to the app). Simulators and daemon are their own processes, as on a tool PC."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.bench_api import CLI, Line

pytestmark = pytest.mark.timeout(90)


def test_the_daemon_serves_the_pages_the_assets_and_a_wafers_plots() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="screen-daemon-"))
    line = Line(tmp)
    try:
        with httpx.Client(base_url=line.url, timeout=30.0, headers=CLI) as http:
            body = {"lot": {"lot_id": "S1", "flow": "FLOW-Q",
                            "wafers": [{"slot": 1, "id": "S1-1"}]}}
            http.post("/lots", json=body).raise_for_status()
            deadline = time.monotonic() + 60.0
            while http.get("/lots/S1").json()["state"] != "PROCESS_COMPLETE":
                assert time.monotonic() < deadline, "the lot did not complete"
                time.sleep(0.1)
            page = http.get("/")
            assert page.status_code == 200 and 'id="lot-S1"' in page.text
            for asset, kind in (("screen.css", "text/css"), ("screen.js", "javascript")):
                r = http.get(f"/ui/static/{asset}")
                assert r.status_code == 200 and kind in r.headers["content-type"]
            wafer = http.get("/ui/wafers/S1-1")
            assert 'id="plot-cure"' in wafer.text and 'id="plot-etch"' in wafer.text
            for which in ("cure", "etch"):
                svg = http.get(f"/ui/wafers/S1-1/{which}.svg")
                assert svg.status_code == 200 and svg.headers["content-type"].startswith(
                    "image/svg+xml") and b"<svg" in svg.content
    finally:
        line.close()
        shutil.rmtree(tmp, ignore_errors=True)
