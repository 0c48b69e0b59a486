"""What the daemon does on a person's request, audited: shared by the API and the screen.

``DaemonCore`` holds what every face of the daemon reads (the line, the E10 tracker,
the event hub, the audit log) and the audited actions: take, give, a manual
command, an alarm's acknowledgement, a disposition of held wafers. The API's routes
(api.py) and the operator's screen (``sequencer/faces/screen``) call these same
methods, so a change from a browser is refused by the same rules and leaves the
same audit entry as one from the CLI. A refusal raises ``HttpError`` (or the line's
``LineError``) with the one-line reason; nothing has changed then.

Roles are checked before these are called (the gate, or the screen's session);
what is checked here is what depends on the request itself (a forced take needs
engineer; a command that would change a busy tool is refused).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from sequencer.faces.http.auth import AuthConfig, Principal, Role
from sequencer.faces.http.commands import changes_tool, check_command
from sequencer.faces.http.contract import (
    AlarmView,
    LineControl,
    LineError,
    ManualReply,
    ToolBusy,
    ToolRejected,
    ToolView,
    WaferView,
)
from sequencer.faces.http.e10 import E10Tracker
from sequencer.faces.http.errors import HttpError, Problem
from sequencer.faces.http.events import EventHub
from sequencer.store.audit import AuditLog

log = structlog.get_logger("viaform.daemon")


@dataclass
class DaemonCore:
    """The daemon's shared state. ``journal`` is the journal file (traces for the screen's
    plots), None when the line has none a face may read."""

    line: LineControl
    auth: AuthConfig
    audit: AuditLog
    clock: Callable[[], float] = time.time
    recipes_dir: Path | str | None = None
    journal: Path | None = None
    e10: E10Tracker = field(init=False)
    hub: EventHub = field(default_factory=EventHub)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.e10 = E10Tracker(self.clock)
        self.started = self.clock()

    def role_of(self, who: Principal) -> str:
        """The role written into the audit: ``open`` on an open daemon."""
        return "open" if self.auth.open else who.role.name.lower()

    def tool_view(self, tool: str) -> ToolView:
        view = self.line.tool_status(tool)
        if tool in self.e10.tools():
            view = view.model_copy(update={"e10": self.e10.view(tool)})
        return view

    # --- the audited actions ----------------------------------------------------------
    async def manual(self, tool: str, command: str, args: dict[str, Any],
                     who: Principal) -> ManualReply:
        """One manual command: 422 if invalid, 409 (audited as refused) while a job step
        runs on the tool and the command would change it."""
        view = self.line.tool_status(tool)
        problems = check_command(tool, command, args, view.kind or tool)
        if problems:
            raise HttpError(422, f"{tool} {command}: invalid command",
                            problems=[Problem(place=p, message=m) for p, m in problems])
        if changes_tool(command, args) and self.line.tool_busy(tool):
            text = (f"{tool} is running step {view.step} of lot {view.lot_id} (wafer "
                    f"{view.wafer_id}); '{command}' would change the tool. Wait for "
                    f"the step to end, or take the tool ('viaform tool {tool} take').")
            self.audit.record(who.name, self.role_of(who), tool, command, args, "refused",
                              text)
            raise HttpError(409, text)
        entry = self.audit.begin(who.name, self.role_of(who), tool, command, args)
        try:
            reply = await self.line.manual(tool, command, args, who.name)
        except BaseException as exc:
            outcome = ("refused" if isinstance(exc, ToolBusy) else
                       "rejected" if isinstance(exc, ToolRejected) else "error")
            self.audit.finish(entry, outcome, f"{type(exc).__name__}: {exc}")
            raise
        self.audit.finish(entry, "ok", reply.reply)
        return reply

    async def take(self, tool: str, force: bool, who: Principal) -> ToolView:
        if force and not self.auth.open and who.role < Role.ENGINEER:
            raise HttpError(403, f"{who.name} is {who.role.name.lower()}; a forced take "
                                 f"(pausing the running job) needs engineer")
        self.line.tool_status(tool)
        command = "take --force" if force else "take"
        entry = self.audit.begin(who.name, self.role_of(who), tool, command, {})
        try:
            view = await self.line.take(tool, force, who.name)
        except BaseException as exc:
            self.audit.finish(entry, "refused", f"{type(exc).__name__}: {exc}")
            raise
        self.audit.finish(entry, "ok", "ENGINEERING" if view.engineering else
                          "pending: ENGINEERING when the current step ends")
        return self.tool_view(tool)

    async def give(self, tool: str, who: Principal) -> ToolView:
        self.line.tool_status(tool)
        entry = self.audit.begin(who.name, self.role_of(who), tool, "give", {})
        try:
            await self.line.give(tool, who.name)
        except BaseException as exc:
            self.audit.finish(entry, "refused", f"{type(exc).__name__}: {exc}")
            raise
        self.audit.finish(entry, "ok", "given back to production")
        return self.tool_view(tool)

    async def ack(self, alarm_id: int, who: Principal) -> AlarmView:
        """Acknowledge an alarm (a person has seen to its cause); audited on its tool."""
        alarm = next((a for a in self.line.alarms(active_only=False) if a.id == alarm_id),
                     None)
        if alarm is None:
            raise HttpError(404, f"no alarm {alarm_id}")
        entry = self.audit.begin(who.name, self.role_of(who), alarm.tool, "ack",
                                 {"alarm": alarm_id, "kind": alarm.kind})
        try:
            acked = await self.line.ack_alarm(alarm_id, who.name)
        except BaseException as exc:
            self.audit.finish(entry, "refused", f"{type(exc).__name__}: {exc}")
            raise
        self.audit.finish(entry, "ok", f"acknowledged by {acked.acked_by}"
                          if acked.acked_by else "acknowledged")
        return acked

    async def dispose(self, action: Literal["release", "scrap"], wafers: list[str],
                      reason: str, who: Principal) -> list[WaferView]:
        if len(set(wafers)) != len(wafers):
            twice = sorted({w for w in wafers if wafers.count(w) > 1})
            raise HttpError(422, "invalid request: 1 problem(s)", problems=[Problem(
                place="wafers", message=f"given more than once: {', '.join(twice)}")])
        args = {"wafers": wafers, "reason": reason}
        entry = self.audit.begin(who.name, self.role_of(who), "wafer", action, args)
        try:
            call = (self.line.release_wafers if action == "release"
                    else self.line.scrap_wafers)
            views = await call(wafers, reason, who.name)
        except BaseException as exc:
            self.audit.finish(entry, "refused" if isinstance(exc, LineError) else "error",
                              f"{type(exc).__name__}: {exc}")
            raise
        self.audit.finish(entry, "ok", ", ".join(f"{v.wafer_id} {v.state}" for v in views))
        log.info("wafers " + action + "d", wafers=wafers, who=who.name)
        return list(views)
