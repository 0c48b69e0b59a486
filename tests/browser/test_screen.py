"""The operator's screen in a real headless Chromium, against a daemon running lots on the
simulators (tests/browser/screenkit.py).

What a person at the tool PC relies on: the page shows every tool and the lot, and the
wafer map changes as wafers progress without a reload; an alarm at a tool is in the
banner within 2 s; an operator cannot acknowledge it, a technician can (and the tool is
cleared only then); a wafer's page draws its cure profile and its OES trace from the
journal; a page from another origin cannot change anything; no console errors.
Screenshots of every page go to ``.artifacts/screen/`` (git-ignored).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from sequencer.faces.plots.traces import wafer_traces
from sequencer.store.history import History
from simulators.runner import SimThread
from tests.browser.screenkit import (
    ARTIFACTS,
    PANEL,
    TOKENS,
    Daemon,
    daemon_on_sims,
    wait_until,
)

FINAL_LOT = {"PROCESS_COMPLETE", "ABORTED", "STOPPED"}
SVG = "{http://www.w3.org/2000/svg}"
pytestmark = [pytest.mark.timeout(90), pytest.mark.sim_time_scale(3000.0)]

# the observer the tests install: every state each wafer-map slot has shown, in order
RECORD_SLOTS = """() => {
  window.__marker = "no reload";
  window.__seen = {};
  const note = () => document.querySelectorAll("[data-wafer]").forEach(el => {
    const seen = (window.__seen[el.dataset.wafer] ||= []);
    if (seen[seen.length - 1] !== el.dataset.state) seen.push(el.dataset.state);
  });
  note();
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true,
                                                     attributes: true});
}"""


class Console:
    """Every console error and uncaught page error of a context's pages."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                self.errors.append(f"{page.url}: {msg.text}")
        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        return page


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=PANEL)
    try:
        yield ctx
    finally:
        ctx.close()


def login(page: Page, d: Daemon, role: str) -> None:
    page.goto(d.url + "/")
    assert "/ui/login" in page.url, "a daemon with tokens must ask for the token"
    page.fill("#token", TOKENS[role])
    page.click("#login")
    page.wait_for_url(d.url + "/")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def svg_series(svg: bytes, gid: str) -> list[ET.Element]:
    """The path elements under the SVG group matplotlib wrote for the artist ``gid``."""
    root = ET.fromstring(svg)
    return [p for g in root.iter(f"{SVG}g") if g.get("id") == gid
            for p in g.iter(f"{SVG}path")]


def vertices(path: ET.Element) -> int:
    d = path.get("d", "")
    return sum(1 for tok in d.split() if tok in ("M", "L"))


def journal_series(db: Path, wafer_id: str) -> dict[str, dict[str, int]]:
    """How many points of each plotted series the journal recorded for the wafer."""
    history = History(db)
    try:
        tr = wafer_traces(history, wafer_id)
    finally:
        history.close()
    assert tr.cure is not None and tr.etch is not None, "both traces in the journal"

    def n(ys: Any) -> int:
        return sum(1 for y in ys if y is not None)
    return {"cure": {"pv": n(tr.cure.chamber_c), "setpoint": n(tr.cure.setpoint_c),
                     "wafer": n(tr.cure.wafer_c), "o2": n(tr.cure.o2_ppm),
                     "n2": n(tr.cure.n2_slm)},
            "etch": {"co": n(tr.etch.co_counts), "o": n(tr.etch.o_counts)},
            "marks": {"endpoint" if tr.etch.endpoint_s is not None else "main_end": 1,
                      **({"soak": len(tr.cure.soaks)} if tr.cure.soaks else {})}}


def test_line_page_shows_the_tools_and_the_lot_live_and_each_page_draws(
        sims: SimThread, tmp_path: Path, context: BrowserContext) -> None:
    console = Console()
    with daemon_on_sims(tmp_path, sims) as d:
        page = console.watch(context.new_page())
        login(page, d, "operator")
        tools = [t["tool"] for t in d.api().get("/tools").json()]
        cards = page.locator("article.card[data-tool]")
        assert cards.count() == len(tools) == len(d.line.tools())
        assert [cards.nth(i).get_attribute("data-tool") for i in range(cards.count())] == tools
        page.evaluate(RECORD_SLOTS)
        wafers = ["A01", "A02", "A03"]
        d.submit("L1", wafers)
        page.wait_for_selector("#lot-L1", timeout=5000)  # the lot appears without a reload
        page.wait_for_selector("#lot-L1 [data-state=IN_PROCESS]", timeout=10000)
        shot(page, "line-running")
        lot = d.wait_lot("L1", FINAL_LOT)
        assert lot["state"] == "PROCESS_COMPLETE"
        for w in wafers:
            page.wait_for_selector(f"#lot-L1 [data-wafer={w}][data-state=PROCESSED]",
                                   timeout=5000)
        seen = page.evaluate("window.__seen")
        for w in wafers:
            states = seen[w]
            assert states[-1] == "PROCESSED" and "IN_PROCESS" in states, (w, states)
            assert states.index("IN_PROCESS") < states.index("PROCESSED"), (w, states)
        assert page.evaluate("window.__marker") == "no reload"
        slot = page.locator("#lot-L1 [data-wafer=A01]")
        assert "✓" in slot.inner_text() and "st-ok" in (slot.get_attribute("class") or "")
        assert "3 / 3 wafers done" in page.locator("#lot-L1 .bar").inner_text()
        assert "ETA —" in page.locator("#lot-L1 .eta").inner_text()
        shot(page, "line-done")

        slot.click()  # a slot opens its wafer
        page.wait_for_url(d.url + "/ui/wafers/A01")
        truth = d.api().get("/wafers/A01").json()
        depth = page.locator("[data-result=depth_um]").inner_text()
        assert depth == f"{truth['data']['depth_um']:.2f} µm"
        assert page.locator(".record .badge").inner_text() == "PROCESSED"
        recorded = journal_series(d.db, "A01")
        for which in ("cure", "etch"):
            img = page.locator(f"#plot-{which}")
            wait_until(lambda img=img: img.evaluate("i => i.complete && i.naturalWidth > 0"),
                       10.0, f"the {which} plot drawn")
            svg = page.request.get(d.url + f"/ui/wafers/A01/{which}.svg").body()
            for gid, points in recorded[which].items():
                assert points >= 2, f"the journal has only {points} {gid} points"
                drawn = max((vertices(p) for p in svg_series(svg, gid)), default=0)
                assert drawn == points, (which, gid, drawn, points)
        marks = {"endpoint": "etch", "main_end": "etch", "soak": "cure"}
        for gid in recorded["marks"]:  # the endpoint (or the timed end), the soak bands
            svg = page.request.get(d.url + f"/ui/wafers/A01/{marks[gid]}.svg").body()
            assert svg_series(svg, gid), f"{gid} not marked on the {marks[gid]} plot"
        shot(page, "wafer")

        page.click("a[href='/ui/lots/L1']")
        page.wait_for_url(d.url + "/ui/lots/L1")
        rows = page.locator("table.grid tbody tr")
        assert rows.count() == len(wafers)
        assert rows.nth(0).locator("a[href='/ui/wafers/A01']").count() == 1
        assert "PROCESSED" in rows.nth(0).inner_text()
        shot(page, "lot")

        for tool in tools:
            page.goto(d.url + f"/ui/tools/{tool}")
            assert page.locator(f"#tool-{tool}").count() == 1
            assert page.locator("table.status tr").count() > 3, "the tool's status"
            assert page.locator("table.settings").count() == 0, "settings: technicians only"
            shot(page, f"tool-{tool}")
        page.goto(d.url + "/ui/audit")
        shot(page, "audit")
    assert console.errors == []
