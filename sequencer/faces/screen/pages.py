"""The screen's pages (GET): the line, a lot, a wafer and its plots, a tool, the audit log.

Each page reads the line through the contract (``LineControl`` views, the same the
API serves) and renders a template; nothing here changes anything. Without a live
session on a daemon with tokens a page redirects to ``/ui/login`` (a fragment
request gets 401, and the page's script reloads into the login).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from sequencer.faces.http.contract import LineError, LotView
from sequencer.faces.screen import present
from sequencer.faces.screen.access import LOGIN_COOKIE, NeedLogin, Viewer, login_nonce, viewer
from sequencer.faces.screen.plots import Which
from sequencer.faces.screen.settings import WRITABLE
from sequencer.faces.screen.shell import FRAGMENT_HEADER, Screen

RECENT_LOTS = 3  # finished lots shown under the active ones on /
RECENT_ALARMS = 15
AUDIT_ROWS = 200


def _lots_shown(lots: list[LotView]) -> list[LotView]:
    """Active lots first (as submitted), then the latest finished ones."""
    active = [lot for lot in lots if present.lot_active(lot)]
    done = sorted((lot for lot in lots if not present.lot_active(lot)),
                  key=lambda lot: lot.submitted_at, reverse=True)[:RECENT_LOTS]
    return active + done


def pages_router(screen: Screen) -> APIRouter:
    core, line = screen.core, screen.core.line
    ui = APIRouter(include_in_schema=False)

    async def page(request: Request, build: Callable[[Viewer], Awaitable[Response]]
                   ) -> Response:
        try:
            v = viewer(request, screen.sessions, core.auth)
        except NeedLogin:
            if request.headers.get(FRAGMENT_HEADER):
                return HTMLResponse("login needed", 401)
            return RedirectResponse(f"/ui/login?next={quote(request.url.path)}", 303)
        start = time.perf_counter()
        try:
            response = screen.cached(request, v) or await build(v)
        except LineError as exc:
            response = screen.render(request, v, "error.html", exc.status, message=str(exc))
        # the page's server time, for a browser's developer tools and bench_screen
        response.headers["Server-Timing"] = f"page;dur={(time.perf_counter() - start) * 1e3:.2f}"
        return response

    @ui.get("/")
    async def index(request: Request) -> Response:
        async def build(v: Viewer) -> Response:
            return screen.render(request, v, "index.html", lots=_lots_shown(line.lots()))
        return await page(request, build)

    @ui.get("/ui/lots/{lot_id}")
    async def lot_page(request: Request, lot_id: str) -> Response:
        async def build(v: Viewer) -> Response:
            lot = line.lot(lot_id)
            views = [line.wafer(w.wafer_id) for w in sorted(lot.wafers, key=lambda w: w.slot)]
            columns, rows = present.lot_table(views)
            return screen.render(request, v, "lot.html", lot=lot, columns=columns, rows=rows)
        return await page(request, build)

    @ui.get("/ui/wafers/{wafer_id}")
    async def wafer_page(request: Request, wafer_id: str) -> Response:
        async def build(v: Viewer) -> Response:
            wafer = line.wafer(wafer_id)
            drawn = await screen.plots.drawn(wafer_id)
            return screen.render(request, v, "wafer.html", wafer=wafer, drawn=drawn)
        return await page(request, build)

    @ui.get("/ui/wafers/{wafer_id}/{which}.svg")
    async def wafer_plot(request: Request, wafer_id: str, which: Which) -> Response:
        async def build(v: Viewer) -> Response:
            drawn = await screen.plots.drawn(wafer_id)
            svg = drawn.svg(which) if drawn is not None else None
            if svg is None:
                return Response(f"no {which} trace recorded for {wafer_id}", 404,
                                media_type="text/plain")
            return Response(svg, media_type="image/svg+xml",
                            headers={"Cache-Control": "private, max-age=5"})
        return await page(request, build)

    @ui.get("/ui/tools/{tool}")
    async def tool_page(request: Request, tool: str) -> Response:
        async def build(v: Viewer) -> Response:
            view = core.tool_view(tool)
            alarms = [a for a in line.alarms(active_only=False) if a.tool == tool]
            snapshot, status_error = None, None
            try:  # a query (allowed while a step runs), not a change: not audited
                snapshot = (await line.manual(tool, "status", {}, v.principal.name)).reply
            except LineError as exc:
                status_error = str(exc)
            return screen.render(request, v, "tool.html", tool=view,
                                 recent_alarms=alarms[-RECENT_ALARMS:][::-1],
                                 snapshot=snapshot, status_error=status_error,
                                 settings=WRITABLE.get(view.kind, ()))
        return await page(request, build)

    @ui.get("/ui/audit")
    async def audit_page(request: Request, tool: str | None = None) -> Response:
        async def build(v: Viewer) -> Response:
            rows = await run_in_threadpool(core.audit.entries, tool=tool or None,
                                           limit=AUDIT_ROWS)
            return screen.render(request, v, "audit.html", rows=rows, tool_filter=tool or "")
        return await page(request, build)

    @ui.get("/favicon.ico")
    async def favicon() -> Response:  # what a browser asks for by itself
        return RedirectResponse("/ui/static/favicon.svg", 301)

    @ui.get("/ui/login")
    async def login_page(request: Request, next: str = "/") -> Response:
        nonce = login_nonce()
        html = screen.env.get_template("login.html").render(
            next=next, nonce=nonce, auth_open=core.auth.open, error=None,
            CSRF_FIELD="csrf")
        response = HTMLResponse(html)
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path="/ui/login",
                            httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    return ui
