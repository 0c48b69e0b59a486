"""The API's routes: health, metrics, lots, wafers, tools, alarms, events, audit.

``api_router(core, metrics)`` builds them over a ``DaemonCore``. Each route names
the least role it needs in its signature (``Operator``, ``Technician``,
``Engineer``); the gate reads that role and authenticates before the body is read.
The changes a person makes (take, give, manual commands, acknowledgements,
dispositions) are ``DaemonCore``'s audited actions, the same the screen calls.

No ``from __future__ import annotations`` here: FastAPI must resolve the route
annotations (the local ``Operator``/``Technician`` aliases) at definition time.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import PlainTextResponse
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from sequencer.faces.http.auth import Principal, Role
from sequencer.faces.http.bodies import (
    DEFAULT_EVENT_KINDS,
    ERRORS,
    HealthResponse,
    LotSubmission,
    ManualCommand,
    TakeRequest,
    WaferDisposition,
)
from sequencer.faces.http.contract import (
    AlarmView,
    E10View,
    LotSubmitted,
    LotView,
    ManualReply,
    PlanView,
    ToolView,
    WaferView,
)
from sequencer.faces.http.core import DaemonCore
from sequencer.faces.http.errors import HttpError, Problem
from sequencer.faces.http.gate import PRINCIPAL_KEY, ROLE_ATTR, Refused, authenticate
from sequencer.faces.http.metrics import CONTENT_TYPE, LineMetrics
from sequencer.process.lots import parse_lot
from sequencer.store.audit import AuditEntry

log = structlog.get_logger("viaform.daemon")


def require(core: DaemonCore, role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """The route's principal, as the gate found it (it authenticated before the body was
    read); ``ROLE_ATTR`` tells the gate and the OpenAPI document the role."""
    async def dependency(request: Request) -> Principal:
        who = request.scope.get(PRINCIPAL_KEY)
        if isinstance(who, Principal):
            return who
        client = request.client.host if request.client else None  # gate bypassed
        try:
            return authenticate(core.auth, request.headers, role, request.url.path, client)
        except Refused as exc:
            raise HttpError(exc.code, exc.detail, exc.headers) from None
    setattr(dependency, ROLE_ATTR, role)
    return dependency


def api_router(core: DaemonCore, metrics: LineMetrics) -> APIRouter:
    line, e10, hub = core.line, core.e10, core.hub
    Operator = Annotated[Principal, Depends(require(core, Role.OPERATOR))]
    Technician = Annotated[Principal, Depends(require(core, Role.TECHNICIAN))]
    Engineer = Annotated[Principal, Depends(require(core, Role.ENGINEER))]
    api = APIRouter(responses=ERRORS)

    # --- health, metrics ------------------------------------------------------------
    @api.get("/health", tags=["daemon"])
    async def health(_: Operator) -> HealthResponse:
        return HealthResponse(**line.health().model_dump(), uptime_s=core.clock() - core.started,
                              auth="open" if core.auth.open else "tokens",
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
                                                core.recipes_dir)
        if lot is None:
            raise HttpError(422, f"lot {body.lot.lot_id}: {len(problems)} problem(s)",
                        problems=[Problem(place=p.place, message=p.message) for p in problems])
        lot_id = await line.submit_lot(lot)
        return LotSubmitted(lot_id=lot_id, state=line.lot(lot_id).state)

    @api.get("/lots", tags=["lots"])
    async def list_lots(_: Operator) -> list[LotView]:
        return line.lots()

    @api.get("/plan", tags=["lots"])
    async def get_plan(_: Operator) -> PlanView:
        """The planner's plan from the line's current state (``viaform plan --daemon``)."""
        return line.plan()

    @api.get("/lots/{lot_id}", tags=["lots"])
    async def get_lot(lot_id: str, _: Operator) -> LotView:
        return line.lot(lot_id)

    @api.post("/lots/{lot_id}/{action}", tags=["lots"])
    async def lot_action(lot_id: str, action: Literal["pause", "resume", "abort"],
                         who: Operator) -> LotView:
        log.info("lot action", lot_id=lot_id, action=action, who=who.name)
        act = {"pause": line.pause, "resume": line.resume, "abort": line.abort}[action]
        return await act(lot_id)

    @api.get("/wafers/{wafer_id}", tags=["wafers"])
    async def get_wafer(wafer_id: str, _: Operator) -> WaferView:
        return line.wafer(wafer_id)

    @api.post("/wafers/release", tags=["wafers"])
    async def release_wafers(body: WaferDisposition, who: Engineer) -> list[WaferView]:
        """Held (STOPPED) wafers go on to their next step. Any wafer not held: 409 naming
        it, and none of the listed wafers changes."""
        return await core.dispose("release", body.wafers, body.reason, who)

    @api.post("/wafers/scrap", tags=["wafers"])
    async def scrap_wafers(body: WaferDisposition, who: Engineer) -> list[WaferView]:
        """Held (STOPPED) wafers end REJECTED. Any wafer not held: 409 naming it, and none
        of the listed wafers changes."""
        return await core.dispose("scrap", body.wafers, body.reason, who)

    # --- tools ----------------------------------------------------------------------
    @api.get("/tools", tags=["tools"])
    async def list_tools(_: Operator) -> list[ToolView]:
        return [core.tool_view(t) for t in line.tools()]

    @api.get("/tools/{tool}", tags=["tools"])
    async def get_tool(tool: str, _: Operator) -> ToolView:
        return core.tool_view(tool)

    @api.get("/tools/{tool}/e10", tags=["tools"])
    async def get_e10(tool: str, _: Operator) -> E10View:
        line.tool_status(tool)  # 404 for an unknown tool
        if tool not in e10.tools():
            raise HttpError(404, f"no E10 record for {tool}")
        return e10.view(tool)

    @api.post("/tools/{tool}/commands", tags=["tools"])
    async def manual(tool: str, body: ManualCommand, who: Technician) -> ManualReply:
        return await core.manual(tool, body.command, body.args, who)

    @api.post("/tools/{tool}/take", tags=["tools"])
    async def take(tool: str, who: Technician, body: TakeRequest | None = None) -> ToolView:
        return await core.take(tool, body.force if body is not None else False, who)

    @api.post("/tools/{tool}/give", tags=["tools"])
    async def give(tool: str, who: Technician) -> ToolView:
        return await core.give(tool, who)

    # --- alarms, events, audit ------------------------------------------------------
    @api.get("/alarms", tags=["alarms"])
    async def list_alarms(_: Operator, active: bool = False,
                          tool: str | None = None) -> list[AlarmView]:
        """Active (unacknowledged) and past alarms, newest last; ``tool`` narrows them."""
        return [a for a in line.alarms(active_only=active) if tool is None or a.tool == tool]

    @api.post("/alarms/{alarm_id}/ack", tags=["alarms"])
    async def ack_alarm(alarm_id: int, who: Technician) -> AlarmView:
        """Acknowledge an alarm (a person has seen to its cause); audited on its tool."""
        return await core.ack(alarm_id, who)

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
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
        # the store's own frozen dataclass is the response model (pydantic validates it)
        return await run_in_threadpool(core.audit.entries, tool=tool, limit=limit)

    return api
