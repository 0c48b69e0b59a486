"""The operator's GEM controls over HTTP: ``/gem`` (status), ``/gem/{online|offline|local|
remote}`` (technician, audited), ``/gem/messages`` (the S10 terminal log; POST: the
operator's answer to the host).

Built by ``GemFace.routes`` and included by ``create_app`` in the API before the gate,
so tokens and roles are checked as for every other route. A switch that does not apply
in the current control state is 409 with the state named. ``viaform gem …`` calls these.

No ``from __future__ import annotations``: FastAPI resolves the route annotations (the
local ``Operator``/``Technician`` aliases) when the routes are defined.
"""

import time
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from sequencer.faces.gem.terminal import answer
from sequencer.faces.http.auth import Principal, Role
from sequencer.faces.http.contract import Conflict, LineError
from sequencer.faces.http.faces import RouteKit

if TYPE_CHECKING:
    from sequencer.faces.gem.face import GemFace


class GemStatus(BaseModel):
    enabled: bool
    control_state: str
    communicating: bool
    host: str | None
    sessions: int
    port: int
    device_id: int
    spooling: bool
    spooled: int
    sent: int


class GemMessage(BaseModel):
    t: float
    source: str
    text: str


class GemAnswer(BaseModel):
    text: str


def gem_routes(face: "GemFace", kit: RouteKit) -> APIRouter:
    Operator = Annotated[Principal, Depends(kit.require(Role.OPERATOR))]
    Technician = Annotated[Principal, Depends(kit.require(Role.TECHNICIAN))]
    router = APIRouter(prefix="/gem", tags=["gem"])

    @router.get("")
    async def gem_status(_: Operator) -> GemStatus:
        return GemStatus(**face.status())

    @router.get("/messages")
    async def gem_messages(_: Operator) -> list[GemMessage]:
        return [GemMessage(t=float(m.get("t", 0)), source=str(m.get("from", "")),
                           text=str(m.get("text", ""))) for m in face.messages()]

    @router.post("/messages")  # before /{action}, which would match the path
    async def gem_answer(body: GemAnswer, who: Operator) -> GemMessage:
        """The operator's answer to the host: S10F1 to its terminal 0 (GEM300 part's
        ``terminal.answer``: noted in the S10 log, audited, TerminalMessageSent)."""
        if not face.status()["communicating"]:
            raise Conflict("no host is communicating: the answer would not reach it")
        try:
            text = answer(face, body.text, who.name)
        except ValueError as exc:
            raise LineError(str(exc)) from None
        return GemMessage(t=time.time(), source="equipment", text=text)

    @router.post("/{action}")
    async def gem_control(action: Literal["online", "offline", "local", "remote"],
                          who: Technician) -> GemStatus:
        """The operator's E30 switches; audited (tool ``gem``)."""
        try:
            await face.switch(action, who.name, kit.role_of(who))
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        return GemStatus(**face.status())

    return router
