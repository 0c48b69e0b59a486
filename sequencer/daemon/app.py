"""The daemon's HTTP/JSON API (FastAPI): lots, wafers, tools, alarms, events, audit, metrics.

``create_app(line, auth, audit)`` wires the API to anything that implements
``LineControl``. Every route first authenticates (401/403 change nothing), then
validates (422 with every problem, nothing half-applied), then asks the line.
The line's events are pumped, on the app's event loop, into the E10 tracker,
the metrics and the SSE fan-out. OpenAPI: ``/openapi.json``, docs at ``/docs``.

No ``from __future__ import annotations`` here: FastAPI must resolve the route
annotations (the local ``Operator``/``Technician`` aliases) at definition time.
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from sequencer.lots import ID_RE, MAX_SLOTS, parse_lot

from .audit import AuditLog
from .auth import USER_HEADER, AuthConfig, Principal, Role
from .e10 import E10Tracker
from .events import EventHub
from .line import (
    COMMANDS,
    AlarmView,
    E10View,
    HealthView,
    LineControl,
    LineError,
    LineEvent,
    LotSubmitted,
    LotView,
    ManualReply,
    ToolBusy,
    ToolRejected,
    ToolView,
    WaferView,
    changes_tool,
    check_command,
)
from .metrics import CONTENT_TYPE, LineMetrics

log = structlog.get_logger("viaform.daemon")
ID_PATTERN = f"^{ID_RE.pattern}$"
DEFAULT_EVENT_KINDS = "job,wafer,step_start,step_end,alarm,alarm_ack,tool,take,give,batch,e10"
_USER_RE = re.compile(r"[^\w.@-]")


# --- request and error bodies ------------------------------------------------------------
class Problem(BaseModel):
    place: str
    message: str


class ErrorBody(BaseModel):
    detail: str
    problems: list[Problem] = Field(default_factory=list)


class LotWaferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slot: StrictInt = Field(ge=1, le=MAX_SLOTS)
    id: StrictStr = Field(pattern=ID_PATTERN)


class LotIn(BaseModel):
    """The ``lot:`` mapping of a lot file (configs/lots/*.yaml), as JSON."""

    model_config = ConfigDict(extra="forbid")
    lot_id: StrictStr = Field(pattern=ID_PATTERN)
    flow: StrictStr = Field(pattern=ID_PATTERN, description="a flow in the recipes folder")
    wafers: list[LotWaferIn] = Field(min_length=1, max_length=MAX_SLOTS)


class LotSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lot: LotIn


class ManualCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: Literal[tuple(COMMANDS)]  # type: ignore[valid-type]
    args: dict[str, Any] = Field(default_factory=dict)


class TakeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: StrictBool = Field(False, description="engineer only: pause the running job now")


class AuditView(BaseModel):
    id: int
    t: float
    who: str
    role: str
    tool: str
    command: str
    args: dict[str, Any]
    outcome: str
    reply: str | None


class HealthResponse(HealthView):
    uptime_s: float
    auth: Literal["open", "tokens"]
    event_subscribers: int


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in (
        (400, "malformed request body"), (401, "missing or unknown token"),
        (403, "the token's role may not do this"),
        (404, "no such lot, wafer, tool or alarm"), (409, "refused in the current state"),
        (422, "invalid request; problems lists each"), (503, "tool unreachable"))}


# --- the app ----------------------------------------------------------------------------
def create_app(line: LineControl, auth: AuthConfig, audit: AuditLog, *,
               recipes_dir: Path | str | None = None,
               clock: Callable[[], float] = time.time) -> FastAPI:
    started = clock()
    e10, metrics, hub = E10Tracker(clock), LineMetrics(started), EventHub()

    async def pump() -> None:
        while True:
            try:
                async for event in line.events():
                    metrics.observe(event)
                    change = e10.observe(event)
                    hub.publish(event)
                    if change is not None:
                        hub.publish(LineEvent(kind="e10", t=change.t, tool=change.tool,
                                              data={"state": change.state,
                                                    "previous": change.previous}))
            except asyncio.CancelledError:
                raise
            except Exception:  # the daemon never dies of a bad event
                log.exception("event pump failed; restarting")
                await asyncio.sleep(1.0)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        hub.open()
        await line.start()
        active = [(a.id, a.tool) for a in line.alarms(active_only=True)]
        for tool in line.tools():
            e10.track(line.tool_status(tool), active)
        task = asyncio.create_task(pump())
        log.info("daemon started", auth="open" if auth.open else "tokens")
        try:
            yield
        finally:
            hub.close()
            await line.stop()
            task.cancel()
            log.info("daemon stopped")

    app = FastAPI(title="viaform daemon", version="1", lifespan=lifespan,
                  description=__doc__)
    bearer = HTTPBearer(auto_error=False, description="token from the daemon's tokens file")

    def require(role: Role) -> Callable[..., Principal]:
        async def dependency(request: Request, creds: Annotated[
                HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
            if auth.open:
                user = _USER_RE.sub("", request.headers.get(USER_HEADER, ""))[:64]
                return Principal(user or "local", Role.ENGINEER)
            who = auth.identify(creds.credentials if creds else None)
            if who is None:
                log.warning("unauthenticated request", path=request.url.path,
                            client=request.client.host if request.client else None)
                raise _Http(401, "missing or unknown bearer token",
                            {"WWW-Authenticate": "Bearer"})
            if who.role < role:
                log.warning("forbidden request", path=request.url.path, who=who.name,
                            role=who.role.name.lower(), needs=role.name.lower())
                raise _Http(403, f"{who.name} is {who.role.name.lower()}; this needs "
                                 f"{role.name.lower()}")
            return who
        return dependency

    Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
    Technician = Annotated[Principal, Depends(require(Role.TECHNICIAN))]
    api = APIRouter(responses=ERRORS)

    def role_of(who: Principal) -> str:
        return "open" if auth.open else who.role.name.lower()

    def tool_view(tool: str) -> ToolView:
        view = line.tool_status(tool)
        if tool in e10.tools():
            view = view.model_copy(update={"e10": e10.view(tool)})
        return view

    # --- health, metrics ------------------------------------------------------------
    @api.get("/health", tags=["daemon"])
    async def health(_: Operator) -> HealthResponse:
        return HealthResponse(**line.health().model_dump(), uptime_s=clock() - started,
                              auth="open" if auth.open else "tokens",
                              event_subscribers=hub.subscribers)

    @api.get("/metrics", tags=["daemon"], responses={200: {
        "description": "Prometheus text format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def get_metrics(_: Operator) -> PlainTextResponse:
        snap = {t: (v.state, v.seconds) for t in e10.tools() for v in [e10.view(t)]}
        text = metrics.render(snap, [lt.state for lt in line.lots()],
                              len(line.alarms(active_only=True)), hub.subscribers)
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    # --- lots and wafers ------------------------------------------------------------
    @api.post("/lots", tags=["lots"], status_code=status.HTTP_201_CREATED)
    async def submit_lot(body: LotSubmission, _: Operator) -> LotSubmitted:
        lot, problems = await run_in_threadpool(parse_lot, body.lot.model_dump(), None,
                                                recipes_dir)
        if lot is None:
            raise _Http(422, f"lot {body.lot.lot_id}: {len(problems)} problem(s)",
                        problems=[Problem(place=p.place, message=p.message) for p in problems])
        lot_id = await line.submit_lot(lot)
        return LotSubmitted(lot_id=lot_id, state=line.lot(lot_id).state)

    @api.get("/lots", tags=["lots"])
    async def list_lots(_: Operator) -> list[LotView]:
        return line.lots()

    @api.get("/lots/{lot_id}", tags=["lots"])
    async def get_lot(lot_id: str, _: Operator) -> LotView:
        return line.lot(lot_id)

    @api.post("/lots/{lot_id}/{action}", tags=["lots"])
    async def lot_action(lot_id: str, action: Literal["pause", "resume", "abort"],
                         who: Operator) -> LotView:
        log.info("lot action", lot_id=lot_id, action=action, who=who.name)
        return await getattr(line, action)(lot_id)

    @api.get("/wafers/{wafer_id}", tags=["wafers"])
    async def get_wafer(wafer_id: str, _: Operator) -> WaferView:
        return line.wafer(wafer_id)

    # --- tools ----------------------------------------------------------------------
    @api.get("/tools", tags=["tools"])
    async def list_tools(_: Operator) -> list[ToolView]:
        return [tool_view(t) for t in line.tools()]

    @api.get("/tools/{tool}", tags=["tools"])
    async def get_tool(tool: str, _: Operator) -> ToolView:
        return tool_view(tool)

    @api.get("/tools/{tool}/e10", tags=["tools"])
    async def get_e10(tool: str, _: Operator) -> E10View:
        line.tool_status(tool)  # 404 for an unknown tool
        if tool not in e10.tools():
            raise _Http(404, f"no E10 record for {tool}")
        return e10.view(tool)

    @api.post("/tools/{tool}/commands", tags=["tools"])
    async def manual(tool: str, body: ManualCommand, who: Technician) -> ManualReply:
        view = line.tool_status(tool)
        problems = check_command(tool, body.command, body.args)
        if problems:
            raise _Http(422, f"{tool} {body.command}: invalid command",
                        problems=[Problem(place=p, message=m) for p, m in problems])
        if changes_tool(body.command, body.args) and line.tool_busy(tool):
            text = (f"{tool} is running step {view.step} of lot {view.lot_id} (wafer "
                    f"{view.wafer_id}); '{body.command}' would change the tool. Wait for "
                    f"the step to end, or take the tool ('viaform tool {tool} take').")
            audit.record(who.name, role_of(who), tool, body.command, body.args, "refused", text)
            raise _Http(409, text)
        entry = audit.begin(who.name, role_of(who), tool, body.command, body.args)
        try:
            reply = await line.manual(tool, body.command, body.args)
        except BaseException as exc:
            outcome = ("refused" if isinstance(exc, ToolBusy) else
                       "rejected" if isinstance(exc, ToolRejected) else "error")
            audit.finish(entry, outcome, f"{type(exc).__name__}: {exc}")
            raise
        audit.finish(entry, "ok", reply.reply)
        return reply

    @api.post("/tools/{tool}/take", tags=["tools"])
    async def take(tool: str, who: Technician, body: TakeRequest | None = None) -> ToolView:
        force = body.force if body is not None else False
        if force and not auth.open and who.role < Role.ENGINEER:
            raise _Http(403, f"{who.name} is {who.role.name.lower()}; a forced take "
                             f"(pausing the running job) needs engineer")
        line.tool_status(tool)
        command = "take --force" if force else "take"
        entry = audit.begin(who.name, role_of(who), tool, command, {})
        try:
            view = await line.take(tool, force, who.name)
        except BaseException as exc:
            audit.finish(entry, "refused", f"{type(exc).__name__}: {exc}")
            raise
        audit.finish(entry, "ok", "ENGINEERING" if view.engineering else
                     "pending: ENGINEERING when the current step ends")
        return tool_view(tool)

    @api.post("/tools/{tool}/give", tags=["tools"])
    async def give(tool: str, who: Technician) -> ToolView:
        line.tool_status(tool)
        entry = audit.begin(who.name, role_of(who), tool, "give", {})
        try:
            await line.give(tool, who.name)
        except BaseException as exc:
            audit.finish(entry, "refused", f"{type(exc).__name__}: {exc}")
            raise
        audit.finish(entry, "ok", "given back to production")
        return tool_view(tool)

    # --- alarms, events, audit ------------------------------------------------------
    @api.get("/alarms", tags=["alarms"])
    async def list_alarms(_: Operator, active: bool = False,
                          tool: str | None = None) -> list[AlarmView]:
        """Active (unacknowledged) and past alarms, newest last; ``tool`` narrows them."""
        return [a for a in line.alarms(active_only=active) if tool is None or a.tool == tool]

    @api.post("/alarms/{alarm_id}/ack", tags=["alarms"])
    async def ack_alarm(alarm_id: int, who: Operator) -> AlarmView:
        return await line.ack_alarm(alarm_id, who.name)

    @api.get("/events", tags=["events"], responses={200: {
        "description": "server-sent events: hello, then the line's events as they happen",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    async def events(_: Operator, kinds: Annotated[str, Query(
            description="comma-separated event kinds")] = DEFAULT_EVENT_KINDS
                     ) -> EventSourceResponse:
        wanted = [k.strip() for k in kinds.split(",") if k.strip()]
        hello = ServerSentEvent(data=json.dumps({"kinds": wanted}), event="hello")
        return EventSourceResponse(hub.subscribe(wanted, hello), ping=15)

    @api.get("/audit", tags=["audit"])
    async def get_audit(_: Operator, tool: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditView]:
        rows = await run_in_threadpool(audit.entries, tool=tool, limit=limit)
        return [AuditView.model_validate(r, from_attributes=True) for r in rows]

    app.include_router(api)
    _install_error_handlers(app)
    return app


class _Http(Exception):
    """An error answer with the ErrorBody shape."""

    def __init__(self, code: int, detail: str, headers: dict[str, str] | None = None,
                 problems: list[Problem] | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.headers = code, detail, headers
        self.problems = problems or []


def _place(loc: tuple[int | str, ...]) -> str:
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _install_error_handlers(app: FastAPI) -> None:
    def body(detail: str, problems: list[Problem] | None = None) -> dict[str, Any]:
        return ErrorBody(detail=detail, problems=problems or []).model_dump()

    @app.exception_handler(_Http)
    async def http_error(_: Request, exc: _Http) -> JSONResponse:
        return JSONResponse(body(exc.detail, exc.problems), exc.code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow: every method of the path, not only the first route's
            methods: set[str] = set()
            for route in app.routes:
                if route.matches(request.scope)[0] is not Match.NONE:
                    methods |= set(getattr(route, "methods", None) or ())
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse(body(str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(LineError)
    async def line_error(_: Request, exc: LineError) -> JSONResponse:
        detail = str(exc)
        if isinstance(exc, ToolRejected) and exc.code is not None:
            detail = f"{detail} (tool error {exc.code})"
        return JSONResponse(body(detail), exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [Problem(place=_place(tuple(e.get("loc", ()))), message=str(e.get("msg")))
                    for e in exc.errors()]
        return JSONResponse(body(f"invalid request: {len(problems)} problem(s)", problems), 422)
