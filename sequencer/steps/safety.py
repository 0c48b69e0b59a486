"""Leaving a SCPI tool safe: waiting for it to be free, and cleaning up after a failed step.

A tool that cannot be made safe is DOWN (:class:`ToolDown`): the scheduler holds
its remaining work with the reason, and the rest of the line carries on.
"""

from __future__ import annotations

from drivers.errors import ToolError

from ..substrate import Substrate
from . import (
    StepContext,
    StepFailed,
    ToolAlarm,
    ToolDown,
    ToolHandle,
    WaitTimeout,
    apply_fate,
    send_start,
)

#: alarms that warn without stopping work (LX-365 manual: LAMP_LOW)
WARNING_ALARMS = frozenset({"LAMP_LOW"})



async def ensure_idle(ctx: StepContext, h: ToolHandle, idle: str = "IDLE") -> None:
    """Wait (bounded by ``tool_down_s``) until the tool is ``idle`` with no alarm that
    stops work (a failed lamp, an open door); an alarm whose cause is gone is cleared
    on the way. ToolDown if it never gets there, so the tool's work is held."""
    deadline = ctx.clock.now() + ctx.config.tool_down_s
    st, active = "", ()
    while True:
        st = await h.state()
        if st == "ALARM":
            await h.q("clear_alarms")
        active = tuple(a for a in await h.q("alarms") if a not in WARNING_ALARMS)
        if st == idle and not active:
            return
        if ctx.clock.now() > deadline:
            raise ToolDown(h.name, f"not {idle} after {ctx.config.tool_down_s:.0f} s "
                                   f"(state {st}, alarms {', '.join(active) or 'none'})")
        await ctx.clock.sleep(h.poll_s)


async def make_safe(ctx: StepContext, h: ToolHandle, w: Substrate, *, abort_in: set[str],
                    unload_from: set[str], unload_s: float) -> None:
    """Leave a SCPI tool safe after a failure: abort a running operation, clear alarms
    whose cause is gone, unload the wafer and take it back to the stocker.

    A tool that refuses or stops answering on the way is DOWN (ToolDown): the
    scheduler holds its remaining work; the run itself goes on.
    """
    try:
        await _make_safe(ctx, h, w, abort_in=abort_in, unload_from=unload_from,
                         unload_s=unload_s)
    except (ToolError, StepFailed) as exc:
        raise ToolDown(h.name, f"could not be made safe: {exc}") from exc


async def _make_safe(ctx: StepContext, h: ToolHandle, w: Substrate, *, abort_in: set[str],
                     unload_from: set[str], unload_s: float) -> None:
    st = await h.state()
    if st in abort_in:
        iid = ctx.journal.intent(h.name, "ABORT", wafer_ids=[w.wafer_id], lot_id=w.lot_id)
        await h.q("abort")
        ctx.journal.outcome(iid, "OK")
        st = await h.state()
    if st == "ALARM":
        await h.q("clear_alarms")
        st = await h.state()
    if st in unload_from:
        await send_start(ctx, h, "UNLOAD", [w], "unload")
    try:  # out when the unload has ended: IDLE, or ALARM again if its cause is still there
        await h.wait({"IDLE", "ALARM"}, unload_s, "unload after failure", fail=())
    except WaitTimeout as exc:
        raise ToolDown(h.name, f"could not be made safe: {exc}") from exc
    on = getattr(await h.q("status"), "wafer_id", None)
    if on not in (None, "", "NONE"):
        raise ToolDown(h.name, f"could not be made safe: wafer {on} still on the tool")
    await ctx.move([w], "stocker")


async def fail_wafer(ctx: StepContext, h: ToolHandle, w: Substrate, exc: Exception, *,
                     step: str, label: str, begun: bool, active: set[str],
                     unloadable: set[str], unload_s: float) -> None:
    """A SCPI step failed for ``w``: decide its fate, raise the alarm, leave the tool safe.

    ``begun``: the process had started on the wafer (exposure or etch under way), so it
    is ABORTED; otherwise it is held. A StepFailed carries its own fate and reason;
    other reasons read ``"<label>: <what happened>"``.
    """
    fate = exc.fate if isinstance(exc, StepFailed) else ("abort" if begun else "hold")
    reason = exc.reason if isinstance(exc, StepFailed) else f"{label}: {exc}"
    if isinstance(exc, ToolAlarm):
        ctx.alarms.raise_(h.name, "TOOL_ALARM", str(exc), lot_id=w.lot_id,
                          wafer_ids=[w.wafer_id])
    apply_fate(w, fate, reason)
    if w.data.location == h.name:
        await make_safe(ctx, h, w, abort_in=active, unload_from=unloadable, unload_s=unload_s)
    ctx.end([w], step, h.name, ok=False)
