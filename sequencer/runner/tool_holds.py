"""Tools held for a person: a tool alarm stops new work until it is acknowledged in viaform.

A step that meets a tool alarm of the safety or process class (``tool_alarms``) raises
``ToolHeld`` once its wafers are settled. The scheduler then holds the tool here:

1. one ``TOOL_HELD`` alarm in viaform's list (journaled; the daemon's E10 tracker makes
   the tool UNSCHEDULED_DOWN while it is unacknowledged), naming the tool's alarms, what
   a technician does, and the command that acknowledges it. A restart that finds the
   tool still alarmed reuses the journal's unacknowledged alarm instead of raising a
   second one (and one acknowledged after the run that held the tool had ended counts
   as acknowledged: the clear is sent at once);
2. the tool's worker waits (no new work on it) until a person acknowledges that alarm:
   ``viaform alarms --ack ID`` through the daemon, or, under ``viaform run``, the same
   command writing the acknowledgement into the journal file, which is polled here;
3. only then is the tool's own clear sent (``ALARm:CLEar``; the oven's ACK ALARMS),
   journaled, and the tool read again. If it still reports an alarm that holds it (the
   cause is not gone) or stays in ALARM, the tool stays held with the tool's reason,
   under a new alarm for a person to acknowledge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from drivers.errors import ToolError
from sequencer.runner.alarms import Event
from sequencer.runner.steps import StepContext, ToolDown
from sequencer.runner.tool_alarms import describe, holding

log = structlog.get_logger("viaform.holds")

KIND = "TOOL_HELD"
ACK_POLL_WALL_S = 0.25  # how often a held tool's worker looks for the acknowledgement


@dataclass(frozen=True)
class Hold:
    tool: str
    alarms: tuple[str, ...]
    alarm_id: int
    reason: str


class ToolHolds:
    """The held tools of one run or daemon (see the module docstring)."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.held: dict[str, Hold] = {}

    def is_held(self, tool: str) -> bool:
        return tool in self.held

    def hold(self, tool: str, alarms: Iterable[str], reason: str, *,
             lot_id: str | None = None, wafer_ids: Iterable[str] = ()) -> Hold:
        """Hold ``tool``: one alarm for a person (reused if the journal has one open)."""
        names = tuple(alarms)
        existing = self.ctx.journal.active_alarm(tool, KIND)
        acked = self.ctx.journal.acked_uncleared(tool, KIND) if tool not in self.held \
            else None
        if existing is not None and tool not in self.held:
            alarm_id = existing[0]
            log.warning("tool still held", tool=tool, alarm_id=alarm_id, alarms=names)
        elif acked is not None:  # acknowledged while no run held it: clear it now
            alarm_id = acked
            log.info("tool held; its alarm was acknowledged already", tool=tool,
                     alarm_id=alarm_id)
        else:
            how = "" if "acknowledge" in reason else \
                ". When the cause is gone, acknowledge this alarm (viaform alarms --ack ID)"
            text = f"{tool} held: {describe(self.ctx.kind(tool), names)}. {reason}{how}"
            alarm_id = self.ctx.alarms.raise_(tool, KIND, text, lot_id=lot_id,
                                              wafer_ids=wafer_ids).id
        hold = Hold(tool, names, alarm_id, reason)
        self.held[tool] = hold
        self.ctx.emit(Event("tool", self.ctx.clock.now(), tool=tool,
                            data={"held": True, "alarms": list(names), "alarm_id": alarm_id,
                                  "reason": reason}))
        return hold

    async def wait_release(self, tool: str, check: Callable[[], None]) -> None:
        """Until a person acknowledged the hold's alarm and the tool then cleared.
        ``check`` is called at every look (a graceful stop raises from it)."""
        while True:
            hold = self.held[tool]
            who = self.ctx.journal.alarm_acked(hold.alarm_id)
            if who is None:
                check()
                await asyncio.sleep(ACK_POLL_WALL_S)
                continue
            why = await self._clear(hold, who)
            if why is None:
                del self.held[tool]
                log.info("tool released", tool=tool, acked_by=who)
                self.ctx.emit(Event("tool", self.ctx.clock.now(), tool=tool,
                                    data={"held": False, "acked_by": who}))
                return
            log.warning("tool stays held", tool=tool, why=why)
            del self.held[tool]
            self.hold(tool, hold.alarms, why)

    async def _clear(self, hold: Hold, who: str) -> str | None:
        """The tool's own clear, after a person's acknowledgement; None once the tool says
        the cause is gone, else the tool's reason for staying held."""
        h = self.ctx.tools[hold.tool]
        iid = self.ctx.journal.intent(hold.tool, "CLEAR_ALARMS",
                                      args={"alarm_id": hold.alarm_id, "acked_by": who})
        try:
            await h.q(h.driver.clear_alarms)
            self.ctx.journal.outcome(iid, "OK", f"after {who} acknowledged alarm "
                                                f"{hold.alarm_id}")
            state = await h.state()
            left = holding(h.kind, tuple(await h.q(h.driver.alarms)))
        except (ToolError, ToolDown) as exc:
            self.ctx.journal.outcome(iid, "REFUSED", str(exc))
            return f"the {hold.tool} refused its clear after {who}'s acknowledgement: {exc}"
        if left:
            return (f"the {hold.tool} still reports {', '.join(left)} after its clear: the "
                    f"cause is not gone")
        if state == "ALARM":
            return f"the {hold.tool} is still in ALARM after its clear"
        return None
