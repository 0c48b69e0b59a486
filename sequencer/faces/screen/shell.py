"""What the screen's pages share, and how a page is rendered.

``Screen`` holds what the pages share: the daemon's core, the browser sessions, the
Jinja2 environment (templates are package data, autoescaped), the plots, and the two
faces of ``live.py`` the daemon's pump feeds (the steps' start times, the tools'
readings).

Rendering: a page is one template extending ``base.html``. A request with the
``X-Viaform-Fragment`` header gets only the page's live parts (the alarm banner,
``_banner.html``, and the page's ``live`` block), which the page's script swaps in
when the event stream says something changed (``static/screen.js``).

Fragments are shared: the pages of one path and role get one rendering, dated by the
event hub's ``last_id`` when it was made. A page says which event it has last heard
(``X-Viaform-Seen``, the stream's event id): a rendering made after that event was
published shows it, so it is served even if later events came meanwhile (the page
hears those too, and asks again). Without the header, only a rendering made since the
latest event is served. Ten pages woken by one burst so cost one rendering, not one
per event that lands between their requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from sequencer.faces.http.auth import Role
from sequencer.faces.http.core import DaemonCore
from sequencer.faces.http.sessions import CSRF_FIELD, SessionStore
from sequencer.faces.screen import present
from sequencer.faces.screen.access import Viewer, set_session_cookie
from sequencer.faces.screen.live import ReadingsTicker, StepClock
from sequencer.faces.screen.plots import Plots

FRAGMENT_HEADER = "x-viaform-fragment"
SEEN_HEADER = "x-viaform-seen"
#: stands for the session's CSRF token in a cached fragment (every session has its own)
CSRF_SLOT = "\x00csrf\x00"
FragmentKey = tuple[str, str, bool]
MAX_FRAGMENTS = 256


@runtime_checkable
class ControlStateSource(Protocol):
    """A face that knows the SEMI E30 control state (the GEM face): ``status()`` has
    ``control_state`` (ONLINE_REMOTE, ONLINE_LOCAL, EQUIPMENT_OFFLINE, …)."""

    def status(self) -> Mapping[str, Any]: ...


@runtime_checkable
class ControlSwitch(Protocol):
    """A face whose E30 control state the operator switches (the GEM face): audited,
    ``ValueError`` when the switch does not apply now."""

    async def switch(self, action: str, who: str, role: str) -> str: ...


class Screen:
    def __init__(self, core: DaemonCore, faces: Sequence[object] = ()) -> None:
        self.core = core
        self.control = next((f for f in faces if isinstance(f, ControlStateSource)), None)
        self.switch = self.control if isinstance(self.control, ControlSwitch) else None
        self.sessions = SessionStore()
        self.plots = Plots(core.journal)
        self.steps = StepClock()
        self.ticker = ReadingsTicker(core)
        #: the faces the daemon's pump feeds (and starts and stops with the line)
        self.faces = (self.steps, self.ticker)
        self.env = Environment(loader=PackageLoader("sequencer.faces.screen", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.globals.update(present=present, CSRF_FIELD=CSRF_FIELD)
        self._fragments: dict[FragmentKey, tuple[int, str]] = {}

    # --- fragments: every open page asks for its live parts after each event burst; the
    # pages of one path and role share one rendering (module docstring) ---------------
    def _key(self, request: Request, v: Viewer) -> FragmentKey:
        return (request.url.path, request.url.query, v.may(Role.TECHNICIAN, self.core.auth))

    def cached(self, request: Request, v: Viewer) -> Response | None:
        """The fragment this request wants, if a rendering shows what the page has heard
        of (or, without ``X-Viaform-Seen``, everything published so far)."""
        if not request.headers.get(FRAGMENT_HEADER):
            return None
        hit = self._fragments.get(self._key(request, v))
        if hit is None:
            return None
        seen = request.headers.get(SEEN_HEADER, "")
        if hit[0] < (int(seen) if seen.isdigit() else self.core.hub.last_id):
            return None
        return self._respond(request, v, hit[1].replace(CSRF_SLOT, v.session.csrf), 200)

    def common(self, request: Request, v: Viewer) -> dict[str, Any]:
        """What every page shows: who, the alarm banner, held tools, flash messages."""
        core = self.core
        tools = [core.tool_view(t) for t in core.line.tools()]
        now = core.clock()
        return {"request": request, "path": request.url.path, "viewer": v,
                "who": v.principal, "auth_open": core.auth.open,
                "can_ack": v.may(Role.TECHNICIAN, core.auth),
                "is_tech": v.may(Role.TECHNICIAN, core.auth),
                "alarms": core.line.alarms(active_only=True),
                "held": [t for t in tools if t.held], "tools": tools, "now": now,
                "csrf": v.session.csrf, "flash": v.session.flash[:],
                "step_since": dict(self.steps.started),
                "step_left": {t.tool: self.steps.time_left(t.tool, now) for t in tools},
                "last_reading": dict(self.steps.last_reading),
                "readings": {t.tool: self.ticker.readings(t.tool) for t in tools},
                "control_state": self.control_state(),
                "can_switch": self.switch is not None and v.may(Role.TECHNICIAN, core.auth)}

    def control_state(self) -> str | None:
        """The E30 control state in words for the header; None without a GEM face."""
        if self.control is None:
            return None
        try:
            state = self.control.status().get("control_state")
        except Exception:  # not started, or stopping: the header says so, the page renders
            return "unknown"
        return str(state).replace("_", " ") if state else "unknown"

    def render(self, request: Request, v: Viewer, name: str, status: int = 200,
               **ctx: Any) -> Response:
        context = {**self.common(request, v), **ctx}
        template = self.env.get_template(name)
        if request.headers.get(FRAGMENT_HEADER):
            made = self.core.hub.last_id
            context["csrf"] = CSRF_SLOT
            banner = self.env.get_template("_banner.html").render(context)
            live = "".join(template.blocks["live"](template.new_context(context))) \
                if "live" in template.blocks else ""
            e30 = self.env.get_template("_e30.html").render(context)
            html = (f'<span id="e30">{e30}</span><div id="banner">{banner}</div>'
                    f'<div id="live">{live}</div>')
            if status == 200:
                if len(self._fragments) >= MAX_FRAGMENTS:
                    self._fragments.clear()
                self._fragments[self._key(request, v)] = (made, html)
            html = html.replace(CSRF_SLOT, v.session.csrf)
        else:
            html = template.render(context)
            v.session.flash.clear()
        return self._respond(request, v, html, status)

    def _respond(self, request: Request, v: Viewer, html: str, status: int) -> Response:
        response = HTMLResponse(html, status)
        response.headers["Cache-Control"] = "no-store"
        if v.fresh:
            set_session_cookie(response, v.session, request)
        return response

    def back(self, request: Request, v: Viewer, target: str, message: str | None = None
             ) -> Response:
        """After a form: 303 to the page it came from, with a message for that page."""
        if message:
            v.session.flash.append(message)
        response = RedirectResponse(target, 303)
        if v.fresh:
            set_session_cookie(response, v.session, request)
        return response
