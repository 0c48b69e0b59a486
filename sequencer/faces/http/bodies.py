"""The API's request and response bodies beyond the contract's views, and its error table.

Request bodies forbid unknown fields and use strict types, so a typo is a 422 naming
the field rather than a silently ignored key.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from sequencer.faces.http.commands import COMMANDS
from sequencer.faces.http.contract import (
    HealthView,
)
from sequencer.faces.http.errors import ErrorBody
from sequencer.process.lots import ID_RE, MAX_SLOTS

ID_PATTERN = f"^{ID_RE.pattern}$"
DEFAULT_EVENT_KINDS = "job,wafer,step_start,step_end,alarm,alarm_ack,tool,take,give,batch,e10"
REASON_PATTERN = r"\S"  # a reason is not blank


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
