"""The daemon's HTTP/JSON API (FastAPI): lots, wafers, tools, alarms, events, audit, metrics.

``create_app(line, auth, audit)`` wires the API to anything that implements
``LineControl``. Every request first passes the gate (gate.py: a cross-site
state-changing request is refused with 403, then a route's token and role are
checked, 401/403, before its body is read; nothing changes), then is validated
(422 with every problem, nothing half-applied), then the line is asked.
The line's events are pumped, on the app's event loop, into the E10 tracker,
the metrics and the SSE fan-out. OpenAPI: ``/openapi.json``, docs at ``/docs``.

No ``from __future__ import annotations`` here: FastAPI must resolve the route
annotations (the local ``Operator``/``Technician`` aliases) at definition time.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from sequencer.faces.http.auth import AuthConfig, Principal, Role
from sequencer.faces.http.contract import (
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
from sequencer.faces.http.e10 import E10Tracker
from sequencer.faces.http.errors import ErrorBody, HttpError, Problem, install_error_handlers
from sequencer.faces.http.events import EventHub
from sequencer.faces.http.faces import DaemonFace
from sequencer.faces.http.gate import (
    PRINCIPAL_KEY,
    ROLE_ATTR,
    Gate,
    Refused,
    authenticate,
    document_security,
)
from sequencer.faces.http.metrics import CONTENT_TYPE, LineMetrics, Scrape
from sequencer.process.lots import ID_RE, MAX_SLOTS, parse_lot
from sequencer.store.audit import AuditLog

log = structlog.get_logger("viaform.daemon")
ID_PATTERN = f"^{ID_RE.pattern}$"
DEFAULT_EVENT_KINDS = "job,wafer,step_start,step_end,alarm,alarm_ack,tool,take,give,batch,e10"
REASON_PATTERN = r"\S"  # a reason is not blank


# --- request and error bodies ------------------------------------------------------------
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
    # built from COMMANDS at run time (pydantic takes it); mypy wants a literal list here
    command: Literal[tuple(COMMANDS)]  # type: ignore[valid-type]
    args: dict[str, Any] = Field(default_factory=dict)


class TakeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: StrictBool = Field(False, description="engineer only: pause the running job now")


class WaferDisposition(BaseModel):
    """Held (STOPPED) wafers to release or scrap, and why: the reason is audited."""

    model_config = ConfigDict(extra="forbid")
    wafers: list[Annotated[StrictStr, Field(pattern=ID_PATTERN)]] = Field(
        min_length=1, max_length=MAX_SLOTS)
    reason: StrictStr = Field(min_length=1, max_length=500, pattern=REASON_PATTERN)


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
        (403, "a cross-site request, or the token's role may not do this"),
        (404, "no such lot, wafer, tool or alarm"), (409, "refused in the current state"),
        (422, "invalid request; problems lists each"), (503, "tool unreachable"))}


# --- the app ----------------------------------------------------------------------------
def create_app(line: LineControl, auth: AuthConfig, audit: AuditLog, *,
               recipes_dir: Path | str | None = None,
               clock: Callable[[], float] = time.time,
               faces: Sequence[DaemonFace] = ()) -> FastAPI:
    started = clock()
    e10, hub = E10Tracker(clock), EventHub()

    def scrape() -> Scrape:
        return Scrape(e10={t: (v.state, v.seconds) for t in e10.tools() for v in [e10.view(t)]},
                      lot_states=[lt.state for lt in line.lots()],
                      active_alarms=len(line.alarms(active_only=True)),
                      subscribers=hub.subscribers)
    metrics = LineMetrics(started, scrape)

    async def pump() -> None:
        while True:
            try:
                async for event in line.events():
                    metrics.observe(event)
                    change = e10.observe(event)
                    hub.publish(event)
                    for face in faces:
                        face.observe(event)
                    if change is not None:
                        e10_event = LineEvent(kind="e10", t=change.t, tool=change.tool,
                                              data={"state": change.state,
                                                    "previous": change.previous})
                        hub.publish(e10_event)
                        for face in faces:
                            face.observe(e10_event)
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
        for face in faces:
            await face.start(line)
        log.info("daemon started", auth="open" if auth.open else "tokens")
        try:
            yield
        finally:
            hub.close()
            for face in faces:
                await face.stop()
            await line.stop()
            task.cancel()
            log.info("daemon stopped")

    app = FastAPI(title="viaform daemon", version="1", lifespan=lifespan,
                  description=__doc__)

    def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
        """The route's principal, as the gate found it (it authenticated before the body
        was read); ``ROLE_ATTR`` tells the gate and the OpenAPI document the role."""
        async def dependency(request: Request) -> Principal:
            who = request.scope.get(PRINCIPAL_KEY)
            if isinstance(who, Principal):
                return who
            client = request.client.host if request.client else None  # gate bypassed
            try:
                return authenticate(auth, request.headers, role, request.url.path, client)
            except Refused as exc:
                raise HttpError(exc.code, exc.detail, exc.headers) from None
        setattr(dependency, ROLE_ATTR, role)
        return dependency

    Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
    Technician = Annotated[Principal, Depends(require(Role.TECHNICIAN))]
    Engineer = Annotated[Principal, Depends(require(Role.ENGINEER))]
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
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    # --- lots and wafers ------------------------------------------------------------
    @api.post("/lots", tags=["lots"], status_code=status.HTTP_201_CREATED)
    async def submit_lot(body: LotSubmission, _: Operator) -> LotSubmitted:
        lot, problems = await run_in_threadpool(parse_lot, body.lot.model_dump(), None,
                                                recipes_dir)
        if lot is None:
            raise HttpError(422, f"lot {body.lot.lot_id}: {len(problems)} problem(s)",
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

    async def dispose(action: Literal["release", "scrap"], body: WaferDisposition,
                      who: Principal) -> list[WaferView]:
        if len(set(body.wafers)) != len(body.wafers):
            twice = sorted({w for w in body.wafers if body.wafers.count(w) > 1})
            raise HttpError(422, "invalid request: 1 problem(s)", problems=[Problem(
                place="wafers", message=f"given more than once: {', '.join(twice)}")])
        args = {"wafers": body.wafers, "reason": body.reason}
        entry = audit.begin(who.name, role_of(who), "wafer", action, args)
        try:
            views = await getattr(line, f"{action}_wafers")(body.wafers, body.reason, who.name)
        except BaseException as exc:
            audit.finish(entry, "refused" if isinstance(exc, LineError) else "error",
                         f"{type(exc).__name__}: {exc}")
            raise
        audit.finish(entry, "ok", ", ".join(f"{v.wafer_id} {v.state}" for v in views))
        log.info("wafers " + action + "d", wafers=body.wafers, who=who.name)
        return list(views)

    @api.post("/wafers/release", tags=["wafers"])
    async def release_wafers(body: WaferDisposition, who: Engineer) -> list[WaferView]:
        """Held (STOPPED) wafers go on to their next step. Any wafer not held: 409 naming
        it, and none of the listed wafers changes."""
        return await dispose("release", body, who)

    @api.post("/wafers/scrap", tags=["wafers"])
    async def scrap_wafers(body: WaferDisposition, who: Engineer) -> list[WaferView]:
        """Held (STOPPED) wafers end REJECTED. Any wafer not held: 409 naming it, and none
        of the listed wafers changes."""
        return await dispose("scrap", body, who)

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
            raise HttpError(404, f"no E10 record for {tool}")
        return e10.view(tool)

    @api.post("/tools/{tool}/commands", tags=["tools"])
    async def manual(tool: str, body: ManualCommand, who: Technician) -> ManualReply:
        view = line.tool_status(tool)
        problems = check_command(tool, body.command, body.args)
        if problems:
            raise HttpError(422, f"{tool} {body.command}: invalid command",
                        problems=[Problem(place=p, message=m) for p, m in problems])
        if changes_tool(body.command, body.args) and line.tool_busy(tool):
            text = (f"{tool} is running step {view.step} of lot {view.lot_id} (wafer "
                    f"{view.wafer_id}); '{body.command}' would change the tool. Wait for "
                    f"the step to end, or take the tool ('viaform tool {tool} take').")
            audit.record(who.name, role_of(who), tool, body.command, body.args, "refused", text)
            raise HttpError(409, text)
        entry = audit.begin(who.name, role_of(who), tool, body.command, body.args)
        try:
            reply = await line.manual(tool, body.command, body.args, who.name)
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
            raise HttpError(403, f"{who.name} is {who.role.name.lower()}; a forced take "
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
    async def ack_alarm(alarm_id: int, who: Technician) -> AlarmView:
        """Acknowledge an alarm (a person has seen to its cause); audited on its tool."""
        alarm = next((a for a in line.alarms(active_only=False) if a.id == alarm_id), None)
        if alarm is None:
            raise HttpError(404, f"no alarm {alarm_id}")
        entry = audit.begin(who.name, role_of(who), alarm.tool, "ack",
                            {"alarm": alarm_id, "kind": alarm.kind})
        try:
            acked = await line.ack_alarm(alarm_id, who.name)
        except BaseException as exc:
            audit.finish(entry, "refused", f"{type(exc).__name__}: {exc}")
            raise
        audit.finish(entry, "ok", f"acknowledged by {acked.acked_by}"
                     if acked.acked_by else "acknowledged")
        return acked

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
    install_error_handlers(app)
    app.add_middleware(Gate, auth=auth, routes=api.routes)
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        doc = generated()
        document_security(doc, api.routes, auth.open)
        return doc

    # FastAPI's documented way to extend the schema: replace the method on the app
    app.openapi = openapi  # type: ignore[method-assign]
    return app
