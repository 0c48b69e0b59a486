"""The screen's forms (POST): log in and out, acknowledge an alarm, take and give a tool,
change a manual setting.

Order for every change, before anything is asked of the line: the gate has already
refused a cross-site request (Origin/Referer, gate.py); then a live session
(else 401), its CSRF token and the role the API route needs (else 403, a page
saying why; nothing changed). Then the same ``DaemonCore`` action the API runs, so
the rules and the audit entry are the API's: a refusal (409 busy tool, 422 bad
value, the tool's own refusal) comes back to the page it was sent from as a message
and is in the audit log like the API's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sequencer.faces.http.auth import Role
from sequencer.faces.http.contract import LineError
from sequencer.faces.http.errors import HttpError
from sequencer.faces.http.sessions import COOKIE
from sequencer.faces.screen.access import (
    LOGIN_COOKIE,
    Forbidden,
    NeedLogin,
    Viewer,
    check_form,
    check_login,
    form,
    login_nonce,
    safe_next,
    set_session_cookie,
    viewer,
)
from sequencer.faces.screen.settings import typed
from sequencer.faces.screen.shell import Screen

log = structlog.get_logger("viaform.screen")
#: the operator's E30 switches, as ``viaform gem …`` names them
E30_SWITCHES = ("online", "offline", "local", "remote")
Act = Callable[[Viewer, dict[str, str]], Awaitable[str]]


def actions_router(screen: Screen) -> APIRouter:
    core = screen.core
    ui = APIRouter(include_in_schema=False)

    def refused(request: Request, status: int, message: str) -> Response:
        log.warning("screen form refused", path=request.url.path, status=status,
                    reason=message)
        html = screen.env.get_template("refused.html").render(message=message)
        return HTMLResponse(html, status)

    async def change(request: Request, role: Role, act: Act, default_back: str) -> Response:
        """Session, CSRF, role; then ``act`` (its text is the message shown); back."""
        try:
            v = viewer(request, screen.sessions, core.auth)
        except NeedLogin:
            return refused(request, 401, "not logged in (or the session ended): log in "
                                         "again; nothing was changed")
        fields = {}
        try:
            fields = await form(request)
            if v.fresh:
                raise Forbidden("no session yet: load the page first; nothing was changed")
            check_form(v, fields, role, core.auth)
        except Forbidden as exc:
            return refused(request, 403, str(exc))
        back = safe_next(fields.get("next"), default_back)
        try:
            message = await act(v, fields)
        except HttpError as exc:
            message = f"refused: {exc.detail}"
            if exc.problems:
                message += " (" + "; ".join(f"{p.place}: {p.message}" for p in exc.problems) \
                    + ")"
        except LineError as exc:
            message = f"refused: {exc}"
        return screen.back(request, v, back, message)

    @ui.post("/ui/alarms/{alarm_id}/ack")
    async def ack(request: Request, alarm_id: int) -> Response:
        async def act(v: Viewer, _: dict[str, str]) -> str:
            alarm = await core.ack(alarm_id, v.principal)
            return f"alarm {alarm.id} ({alarm.tool} {alarm.kind}) acknowledged by " \
                   f"{alarm.acked_by or v.principal.name}"
        return await change(request, Role.TECHNICIAN, act, "/")

    @ui.post("/ui/tools/{tool}/take")
    async def take(request: Request, tool: str) -> Response:
        async def act(v: Viewer, fields: dict[str, str]) -> str:
            view = await core.take(tool, fields.get("force") == "1", v.principal)
            return (f"{tool} taken for engineering" if view.engineering else
                    f"{tool}: taken, ENGINEERING when the current step ends")
        return await change(request, Role.TECHNICIAN, act, f"/ui/tools/{tool}")

    @ui.post("/ui/tools/{tool}/give")
    async def give(request: Request, tool: str) -> Response:
        async def act(v: Viewer, _: dict[str, str]) -> str:
            await core.give(tool, v.principal)
            return f"{tool} given back to production"
        return await change(request, Role.TECHNICIAN, act, f"/ui/tools/{tool}")

    @ui.post("/ui/tools/{tool}/set")
    async def set_setting(request: Request, tool: str) -> Response:
        async def act(v: Viewer, fields: dict[str, str]) -> str:
            name, value = fields.get("name", ""), typed(fields.get("value", ""))
            reply = await core.manual(tool, "set", {"name": name, "value": value},
                                      v.principal)
            return f"{tool} {name} set to {value!r}" + (f": {reply.reply}"
                                                        if reply.reply else "")
        return await change(request, Role.TECHNICIAN, act, f"/ui/tools/{tool}")

    @ui.post("/ui/gem/{action}")
    async def gem_switch(request: Request, action: str) -> Response:
        async def act(v: Viewer, _: dict[str, str]) -> str:
            if screen.switch is None:
                raise LineError("no SECS/GEM interface runs in this daemon (gem.enabled)")
            if action not in E30_SWITCHES:
                raise LineError(f"unknown E30 switch {action!r} (one of "
                                f"{', '.join(E30_SWITCHES)})")
            try:
                state = await screen.switch.switch(action, v.principal.name,
                                                   core.role_of(v.principal))
            except ValueError as exc:
                raise LineError(str(exc)) from None
            return f"E30 control state: {state.replace('_', ' ')}"
        return await change(request, Role.TECHNICIAN, act, "/")

    @ui.post("/ui/login")
    async def login(request: Request) -> Response:
        try:
            fields = await form(request)
            who = check_login(request, fields, core.auth)
        except Forbidden as exc:
            return refused(request, 403, str(exc))
        target = safe_next(fields.get("next"))
        if who is None:
            nonce = login_nonce()
            html = screen.env.get_template("login.html").render(
                next=target, nonce=nonce, auth_open=core.auth.open, CSRF_FIELD="csrf",
                error="unknown token: nothing was logged in")
            response: Response = HTMLResponse(html, 401)
            response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path="/ui/login",
                                httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
            log.warning("screen login refused", client=request.client.host
                        if request.client else None)
            return response
        old = request.cookies.get(COOKIE)
        if old:
            screen.sessions.drop(old)  # a new id at every login (no session fixation)
        session = screen.sessions.new(who)
        log.info("screen login", who=who.name, role=who.role.name.lower())
        response = RedirectResponse(target, 303)
        set_session_cookie(response, session, request)
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    @ui.post("/ui/logout")
    async def logout(request: Request) -> Response:
        async def act(v: Viewer, _: dict[str, str]) -> str:
            screen.sessions.drop(v.session.id)
            return ""
        response = await change(request, Role.OPERATOR, act, "/ui/login")
        if response.status_code == 303:
            response.headers["location"] = "/ui/login"
            response.delete_cookie(COOKIE, path="/")
        return response

    return ui
