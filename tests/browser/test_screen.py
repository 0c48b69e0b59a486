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

import http.server
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from sequencer.faces.http.auth import AuthConfig
from sequencer.faces.plots.traces import wafer_traces
from sequencer.faces.screen.present import duration_text
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
from tests.hil.flowkit import oven_reading, scpi, tool_state, write_recipe

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
    shot(page, "login")
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


def etcher_endpoint(sims: SimThread, page: Page) -> tuple[str, float | None]:
    """The last etch's wafer and OES endpoint (RF s; None: none) as the etcher simulator
    says (``JOB:LAST?``, ``ETCH:STATus?``), once the page's etcher card shows the same."""
    job, status = scpi(sims, "etcher", "JOB:LAST?"), scpi(sims, "etcher", "ETCH:STAT?")
    wafer, endpoint = job.split(",")[1], float(status.split(",")[2])
    shown = f"{wafer}: " + (f"detected at {duration_text(endpoint)} of RF" if endpoint >= 0
                            else "none found (the main etch ran its set time)")
    card = page.locator("#tool-etcher [data-field=endpoint]")
    wait_until(lambda: card.inner_text() == shown, 5.0, f"the etcher card's {shown!r}")
    return wafer, endpoint if endpoint >= 0 else None


def endpoint_flow(recipes: Path) -> str:
    """``FLOW-E``: FLOW-Q with its etch stopped at the OES endpoint (ETCH-OPEN-01, endpoint
    on); its name."""
    etch = yaml.safe_load((recipes / "ETCH-OPEN-01.yaml").read_text())["etch"]
    write_recipe(recipes.parent, "etch", {**etch, "name": "ETCH-OPEN-EP", "endpoint": True})
    flow = yaml.safe_load((recipes / "FLOW-Q.yaml").read_text())["flow"]
    flow["steps"][-1]["recipe"] = "ETCH-OPEN-EP"
    write_recipe(recipes.parent, "flow", {**flow, "name": "FLOW-E"})
    return "FLOW-E"


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
        # the etcher card: the last etch's OES endpoint (none: a timed etch), as the tool
        # itself reports it
        assert etcher_endpoint(sims, page) == ("A03", None)
        eta = d.lot("L1")["eta"]  # the planner's, once it gives one
        wait_until(lambda: page.locator("#lot-L1 .eta").inner_text() == "ETA " + (
            "—" if eta is None else time.strftime("%H:%M:%S", time.localtime(eta))), 5.0,
                   f"the lot's ETA ({eta}) on the page")
        shot(page, "line-done")

        for _ in range(60):  # keyboard reachable: Tab, in page order, gets to the slot
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset.wafer") == "A01":
                break
        assert page.evaluate("document.activeElement.dataset.wafer") == "A01"
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


def csrf_of(page: Page) -> str:
    """The page's own CSRF token (every page's logout form carries it)."""
    return str(page.locator("form[action='/ui/logout'] input[name=csrf]").get_attribute(
        "value"))


def test_an_injected_alarm_is_in_the_banner_within_2_s_and_only_a_technician_acks_it(
        sims: SimThread, tmp_path: Path, browser: Browser) -> None:
    console = Console()
    with daemon_on_sims(tmp_path, sims) as d:
        op_ctx, tech_ctx = (browser.new_context(viewport=PANEL) for _ in range(2))
        try:
            operator = console.watch(op_ctx.new_page())
            technician = console.watch(tech_ctx.new_page())
            login(operator, d, "operator")
            login(technician, d, "technician")
            d.submit("LA", ["B01", "B02"])
            wait_until(lambda: d.tool("oven")["busy"], 20.0, "the oven curing")
            assert operator.locator(".banner .alarm").count() == 0
            sims.call(sims.faults["oven"].inject, "sensor_break")
            t0 = time.monotonic()
            operator.wait_for_selector(".banner .alarm:has-text('oven')", timeout=2000)
            technician.wait_for_selector(".banner .alarm:has-text('oven')", timeout=2000)
            seen_after = time.monotonic() - t0
            assert seen_after <= 2.0
            def oven_alarms() -> list[dict[str, Any]]:
                return [a for a in d.api().get("/alarms?active=true").json()
                        if a["tool"] == "oven"]
            alarm = oven_alarms()[0]
            banner = operator.locator(f"#alarm-{alarm['id']}")
            assert "since" in banner.inner_text() and alarm["text"] in banner.inner_text()
            held = operator.locator(".banner [data-held=oven]")  # what a person must do
            held.wait_for(timeout=5000)
            assert "SENSOR_BREAK" in held.inner_text() and "safety" in held.inner_text()
            assert operator.locator(".banner button").count() == 0, "no Acknowledge for them"
            assert "technician must acknowledge" in banner.inner_text()
            shot(operator, "banner-operator")
            # the operator's session posts the acknowledgement anyway, with its own CSRF token
            refused = op_ctx.request.post(d.url + f"/ui/alarms/{alarm['id']}/ack",
                                          form={"csrf": csrf_of(operator)},
                                          headers={"Origin": d.url}, max_redirects=0)
            assert refused.status == 403 and "needs technician" in refused.text()
            assert alarm["id"] in [a["id"] for a in d.api().get("/alarms?active=true").json()]
            assert tool_state(sims, "oven") == "ABORTED", "the latch is the tool's to keep"
            sims.call(sims.faults["oven"].clear, "sensor_break")  # the thermocouple fixed
            shot(technician, "banner-technician")
            alarms = oven_alarms()
            for a in alarms:  # the technician acknowledges each, on the page
                technician.click(f"#ack-{a['id']}")
                technician.wait_for_selector(f"#alarm-{a['id']}", state="detached",
                                             timeout=5000)
                operator.wait_for_selector(f"#alarm-{a['id']}", state="detached",
                                           timeout=5000)
            acked = next(a for a in d.api().get("/alarms").json() if a["id"] == alarm["id"])
            assert not acked["active"] and acked["acked_by"] == "tech"

            audit = d.api().get("/audit?tool=oven").json()
            assert [(e["who"], e["role"], e["outcome"]) for e in audit
                    if e["command"] == "ack"] == [("tech", "technician", "ok")] * len(alarms)
            assert "acknowledged by tech" in technician.locator(".flash").inner_text()
        finally:
            op_ctx.close()
            tech_ctx.close()
    assert console.errors == [], console.errors


class ForeignSite:
    """A page on another origin (another port of 127.0.0.1: same site, other origin) that
    tries to make the daemon change something, as a malicious page on the tool PC's
    browser would: a form posted to the screen and a fetch with the browser's cookies."""

    def __init__(self, target: str) -> None:
        page = f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/ui/tools/exposure/take">
<input name="csrf" value="guessed"><button id="go">win a prize</button></form>
<script>
function tryFetch() {{
  return fetch("{target}/ui/tools/exposure/give", {{method: "POST", mode: "no-cors",
    credentials: "include", headers: {{"Content-Type": "application/x-www-form-urlencoded"}},
    body: "csrf=guessed"}}).then(() => "sent", () => "blocked");
}}
</script></body></html>""".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_page_from_another_origin_cannot_change_anything(
        sims: SimThread, tmp_path: Path, context: BrowserContext) -> None:
    with daemon_on_sims(tmp_path, sims) as d:
        page = context.new_page()
        login(page, d, "technician")  # the browser holds a technician's session
        with d.api("technician") as c:  # the etcher taken, so a foreign "give" could matter
            assert c.post("/tools/etcher/take").status_code == 200
        foreign = ForeignSite(d.url)
        try:
            page.goto(foreign.url)
            assert page.evaluate("tryFetch()") in ("sent", "blocked")  # opaque either way
            with page.expect_navigation():
                page.click("#go")
            assert "cross-site request refused" in page.content()
            shot(page, "csrf-refused")
        finally:
            foreign.close()
        # nothing changed on the line, and the daemon logged no change as made
        assert d.tool("exposure")["engineering"] is False
        assert d.tool("etcher")["engineering"] is True
        audit = d.api().get("/audit").json()
        assert [(e["tool"], e["command"]) for e in audit] == [("etcher", "take")]
        # the same forms from the daemon's own page, with its token, do work
        page.goto(d.url + "/ui/tools/exposure")
        page.click("#take")
        page.wait_for_selector(".flash")
        assert d.tool("exposure")["engineering"] is True


def set_on_page(page: Page, name: str, value: str) -> str:
    page.fill(f"#set-{name}", value)
    with page.expect_navigation():
        page.locator(f"#set-{name}").press("Enter")
    return page.locator(".flash").inner_text()


@pytest.mark.sim_time_scale(1000.0)
def test_a_technician_takes_gives_and_sets_and_a_change_is_refused_while_a_step_runs(
        sims: SimThread, tmp_path: Path, context: BrowserContext) -> None:
    console = Console()
    with daemon_on_sims(tmp_path, sims) as d:
        page = console.watch(context.new_page())
        login(page, d, "technician")
        d.submit("LT", ["C01"], endpoint_flow(d.recipes))
        wait_until(lambda: d.tool("oven")["busy"] and not d.tool("exposure")["busy"], 30.0,
                   "C01 curing, the exposure cell idle")
        page.goto(d.url + "/")  # the oven card's PV follows the oven, live (every 2 s)
        pv = page.locator("#tool-oven [data-reading=chamber_c]")
        wait_until(lambda: pv.count() and float(pv.inner_text().split()[0]) >= 100.0, 20.0,
                   "the oven card showing the chamber above 100 °C while it cures")
        assert oven_reading(sims)["chamber_c"] >= 80.0, "the simulated chamber is hot too"
        assert page.locator("#tool-oven [data-reading=o2_ppm]").count() == 1
        # the cure's own estimate, counted down in wall time (1.7 h of tool time at 1000×)
        left = page.locator("#tool-oven [data-field=time-left]")
        wait_until(lambda: left.count(), 20.0, "the oven card's time left")
        assert left.inner_text().endswith(" s") and int(left.inner_text().split()[0]) <= 10
        shot(page, "line-curing")
        page.goto(d.url + "/ui/tools/oven")
        message = set_on_page(page, "unload_temp", "140")
        assert message.startswith("refused:") and "running step cure" in message
        assert tool_state(sims, "oven") in ("PURGING", "RUNNING"), "the program runs on"
        with d.api("technician") as c:  # read back from the oven itself (a query)
            unload = c.post("/tools/oven/commands", json={
                "command": "get", "args": {"name": "unload_temp"}}).json()["reply"]
        assert unload != 140
        shot(page, "tool-oven-refused")

        page.goto(d.url + "/ui/tools/exposure")
        assert "10.0 to 2000.0 mJ/cm2" in page.locator("table.settings").inner_text()
        assert "set to 1.5" in set_on_page(page, "focus", "1.5")
        assert float(scpi(sims, "exposure", "EXP:FOC?")) == 1.5  # the tool has it
        message = set_on_page(page, "focus", "50")
        assert message.startswith("refused:") and "-10.0 to 10.0" in message
        assert float(scpi(sims, "exposure", "EXP:FOC?")) == 1.5
        page.click("#take")
        page.wait_for_selector("#give")
        assert d.tool("exposure")["engineering"] is True
        assert d.tool("exposure")["taken_by"] == "tech"
        shot(page, "tool-exposure-taken")
        page.click("#give")
        page.wait_for_selector("#take")
        assert d.tool("exposure")["engineering"] is False
        audit = [(e["tool"], e["command"], e["outcome"], e["who"])
                 for e in d.api().get("/audit").json()][::-1]
        assert audit == [("oven", "set", "refused", "tech"), ("oven", "get", "ok", "tech"),
                         ("exposure", "set", "ok", "tech"),
                         ("exposure", "set", "error", "tech"),
                         ("exposure", "take", "ok", "tech"), ("exposure", "give", "ok", "tech")]
        d.wait_lot("LT", FINAL_LOT, 60.0)
        page.goto(d.url + "/")  # the etch stopped at the OES endpoint: the card says when
        wafer, endpoint = etcher_endpoint(sims, page)
        assert wafer == "C01" and endpoint is not None
        shot(page, "line-endpoint")
    assert console.errors == [], console.errors


def test_an_open_daemon_needs_no_login_and_the_page_comes_back_after_a_restart(
        sims: SimThread, tmp_path: Path, context: BrowserContext) -> None:
    """Open (loopback, no tokens): the pages read without a login. The daemon stops and a
    new one starts on the same address: the page says it is reconnecting, then shows the
    new daemon's lot without a reload."""
    with daemon_on_sims(tmp_path, sims, auth=AuthConfig()) as d:
        port = d.port
        page = context.new_page()
        page.goto(d.url + "/")
        assert page.url == d.url + "/" and page.locator("article.card").count() == 3
        assert page.locator("form[action='/ui/logout']").count() == 0
        d.submit("LR1", ["R01"])
        page.wait_for_selector("#lot-LR1")
        page.evaluate(RECORD_SLOTS)
        d.wait_lot("LR1", FINAL_LOT)
    page.wait_for_selector("#link.down", timeout=10000)  # the stream is gone
    shot(page, "reconnecting")
    with daemon_on_sims(tmp_path, sims, auth=AuthConfig(), port=port) as d:
        page.wait_for_selector("#link:not(.down)", timeout=20000)
        d.submit("LR2", ["R02"])
        page.wait_for_selector("#lot-LR2 [data-state=PROCESSED]", timeout=20000)
        assert page.evaluate("window.__marker") == "no reload"
        assert page.locator("#lot-LR1").count() == 1, "the first lot, from the journal"


def test_a_technician_switches_the_gem_control_state_from_the_header(
        sims: SimThread, tmp_path: Path, context: BrowserContext) -> None:
    """The real GEM face: its E30 state in the header, switched by a technician on the
    page (what the face itself then reports, and the audit), never by an operator."""
    console = Console()
    with daemon_on_sims(tmp_path, sims, gem=True) as d:
        page = console.watch(context.new_page())
        login(page, d, "operator")
        assert "E30: ONLINE REMOTE" in page.locator("#e30").inner_text()
        assert page.locator("#e30-local").count() == 0, "an operator gets no switch"
        page.click("form[action='/ui/logout'] button")
        page.wait_for_url("**/ui/login**")
        login(page, d, "technician")
        # a second tab on the audit page (whose stream carries no tool readings, which would
        # refresh it anyway): its header must follow, unreloaded
        other = console.watch(context.new_page())
        other.goto(d.url + "/ui/audit")
        other.evaluate("window.__marker = 'no reload'")
        assert "E30: ONLINE REMOTE" in other.locator("#e30").inner_text()
        time.sleep(2.5)  # past the refresh the tab's stream makes when it connects (≤ 2 s)
        page.click("#e30-local")
        wait_until(lambda: "ONLINE LOCAL" in page.locator("#e30").inner_text(), 10.0,
                   "the header showing ONLINE LOCAL")
        wait_until(lambda: "ONLINE LOCAL" in other.locator("#e30").inner_text(), 10.0,
                   "the other tab's header showing ONLINE LOCAL")
        assert other.evaluate("window.__marker") == "no reload"
        with d.api() as c:
            assert c.get("/gem").json()["control_state"] == "ONLINE_LOCAL"  # the face's own
            audit = [(e["tool"], e["command"], e["outcome"], e["who"])
                     for e in c.get("/audit", params={"tool": "gem"}).json()]
        assert ("gem", "local", "ok", "tech") in audit
        shot(page, "e30-local")
        page.click("#e30-remote")
        wait_until(lambda: "ONLINE REMOTE" in page.locator("#e30").inner_text(), 10.0,
                   "the header back to ONLINE REMOTE")
    assert console.errors == [], console.errors
