"""Leaving a SCPI tool safe: waiting for it to be free, and cleaning up after a failed step.

Nothing here clears a tool's alarm. A tool that shows an alarm a person must see
(``sequencer.runner.tool_alarms``: safety or process class) raises :class:`ToolHeld`; the
scheduler holds it until the alarm is acknowledged in viaform. A tool that cannot be
made safe is DOWN (:class:`ToolDown`): its wafer stays recorded on it, alarmed.

Making a tool safe after a failure is journaled work: a ``MAKE_SAFE`` intent (with the
wafer's fate and reason) is written before the fate is applied, and its outcome once
the tool is safe, so a kill in between resumes making the tool safe on restart
(:func:`resume_make_safe`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from drivers.errors import InterlockError, ToolError
from sequencer.runner.protocols import ScpiJobTool, state_name
from sequencer.runner.steps import (
    StepContext,
    StepFailed,
    ToolAlarm,
    ToolDown,
    ToolHandle,
    ToolHeld,
    WaitTimeout,
    apply_fate,
)
from sequencer.runner.steps.start import send_start
from sequencer.runner.tool_alarms import describe, holding
from sequencer.states.substrate import Substrate
from sequencer.store.manual_record import manual_note

ScpiHandle = ToolHandle[ScpiJobTool]  # the exposure cell's or the etcher's

#: tool-seconds an open interlock (a door) is waited for before an unload is retried
INTERLOCK_WAIT_S = 300.0


async def ensure_idle(ctx: StepContext, h: ScpiHandle, idle: str = "IDLE") -> None:
    """Wait (bounded by ``tool_down_s``) until the tool is ``idle`` with no alarm that holds
    it. A tool in ALARM, or idle with a latched alarm a person must see, is held
    (ToolHeld, naming the alarm): nothing is cleared here. Busy past the bound: ToolDown."""
    deadline = ctx.clock.now() + ctx.config.tool_down_s
    while True:
        state, alarms = await h.q(h.driver.condition)  # one line: one instant
        st, active = state_name(state), holding(h.kind, tuple(alarms))
        if st == idle and not active:
            return
        if active or st == "ALARM":
            named = describe(h.kind, active) if active else "no alarm named"
            raise ToolHeld(h.name, active or ("ALARM",),
                           f"{h.name} is {st} with {named}: held for a person")
        if ctx.clock.now() > deadline:
            raise ToolDown(h.name, f"not {idle} after {ctx.config.tool_down_s:.0f} s "
                                   f"(state {st})")
        await ctx.clock.sleep(h.poll_s)


async def make_safe(ctx: StepContext, h: ScpiHandle, w: Substrate, *, abort_in: set[str],
                    unload_from: set[str], unload_s: float) -> None:
    """Leave a SCPI tool safe after a failure: abort a running operation, unload the wafer
    (from ALARM too, as the manuals allow; an open interlock is waited for, within
    ``INTERLOCK_WAIT_S``) and take it back to the stocker. No alarm is cleared.

    A tool that refuses or stops answering on the way is DOWN (ToolDown): the wafer
    stays recorded on it and the scheduler holds its remaining work.
    """
    try:
        await _make_safe(ctx, h, w, abort_in=abort_in, unload_from=unload_from,
                         unload_s=unload_s)
    except (ToolError, StepFailed) as exc:
        raise ToolDown(h.name, f"could not be made safe, wafer {w.wafer_id} left on it: "
                               f"{exc}") from exc


async def _make_safe(ctx: StepContext, h: ScpiHandle, w: Substrate, *, abort_in: set[str],
                     unload_from: set[str], unload_s: float) -> None:
    st = await h.state()
    if st in abort_in:
        iid = ctx.journal.intent(h.name, "ABORT", wafer_ids=[w.wafer_id], lot_id=w.lot_id)
        await h.q(h.driver.abort)
        ctx.journal.outcome(iid, "OK")
        st = await h.state()
    on = getattr(await h.q(h.driver.status), "wafer_id", None)
    if st in unload_from and on not in (None, "", "NONE"):  # (ALARM without one: nothing)
        await _unload(ctx, h, w)
    try:  # out when the unload has ended: IDLE, or ALARM if an alarm is still latched
        await h.wait(h.driver.state, {"IDLE", "ALARM"}, unload_s, "unload after failure",
                     fail=())
    except WaitTimeout as exc:
        raise ToolDown(h.name, f"could not be made safe, wafer {w.wafer_id} left on it: "
                               f"{exc}") from exc
    on = getattr(await h.q(h.driver.status), "wafer_id", None)
    if on not in (None, "", "NONE"):
        raise ToolDown(h.name, f"could not be made safe: wafer {on} still on the tool")
    await ctx.move([w], "stocker")


async def _unload(ctx: StepContext, h: ScpiHandle, w: Substrate) -> None:
    """UNLOAD; an open interlock (+201/+301, e.g. a door opened and closed again) is waited
    for, polling, up to ``INTERLOCK_WAIT_S`` before the unload is retried."""
    deadline = ctx.clock.now() + INTERLOCK_WAIT_S
    while True:
        try:
            await send_start(ctx, h, "UNLOAD", [w], h.driver.unload)
            return
        except InterlockError:
            if ctx.clock.now() > deadline:
                raise
            await ctx.clock.sleep(max(h.poll_s, 1.0))


async def rebooted(h: ScpiHandle) -> str | None:
    """Why the tool's records cannot be trusted since the step's last command (its boot
    id changed: a power cycle), or None."""
    if h.boot is None:
        return None
    try:
        boot = await h.q(h.driver.boot_id)
    except (ToolError, ToolDown):
        return None
    if boot == h.boot:
        return None
    was, h.boot = h.boot, boot
    return f"the {h.name} rebooted mid-step (boot {was} → {boot}): its state and job records " \
           f"were lost"


async def run_wafer_step(ctx: StepContext, h: ScpiHandle, w: Substrate, step: str, *,
                         label: str, begun: Callable[[], bool],
                         run: Callable[[], Awaitable[None]]) -> bool:
    """The shell of a one-wafer SCPI step (expose, etch): journal its begin, ``run`` it, and
    on a tool alarm, a timeout, a refused step or a tool error leave the wafer and the tool
    as :func:`fail_wafer` decides (False). True: the step ran to its end. ``begun`` says,
    at the failure, whether the process had started on the wafer. The abort/unload
    states and the unload time are the step's ``SAFE_PARAMS`` row."""
    _, active, unloadable, unload_s = SAFE_PARAMS[step]
    ctx.begin([w], step, h.name)
    try:
        await run()
    except (ToolAlarm, WaitTimeout, StepFailed, ToolError) as exc:
        await fail_wafer(ctx, h, w, exc, step=step, label=label, begun=begun(),
                         active=active, unloadable=unloadable, unload_s=unload_s)
        return False
    ctx.end([w], step, h.name, ok=True)
    return True


async def fail_wafer(ctx: StepContext, h: ScpiHandle, w: Substrate, exc: Exception, *,
                     step: str, label: str, begun: bool, active: set[str],
                     unloadable: set[str], unload_s: float) -> None:
    """A SCPI step failed for ``w``: decide its fate, leave the tool safe, hold the tool if
    its own alarm caused the failure.

    ``begun``: the process had started on the wafer (exposure or etch under way), so it
    is ABORTED; otherwise it is held. A StepFailed carries its own fate and reason;
    other reasons read ``"<label>: <what happened>"``. A ToolAlarm (the tool went to
    ALARM on its own) ends in ToolHeld once the tool is safe.
    """
    if w.data.location == h.name and (why := await rebooted(h)):
        # the tool forgot the wafer: nothing is sent to it; a person takes the wafer off
        apply_fate(w, "hold", f"held for disposition: {why}; {w.wafer_id} is still on it")
        ctx.end([w], step, h.name, ok=False)
        raise ToolHeld(h.name, ("REBOOTED",), f"{why}; take wafer {w.wafer_id} off the "
                                              f"{h.name} by hand, then acknowledge")
    fate = exc.fate if isinstance(exc, StepFailed) else ("abort" if begun else "hold")
    reason = exc.reason if isinstance(exc, StepFailed) else f"{label}: {exc}"
    reason += manual_note(ctx.journal, h.name, [w.wafer_id], ctx.clock.time_scale)
    held = tuple(exc.alarms) if isinstance(exc, ToolAlarm) else None
    args: dict[str, Any] = {"fate": fate, "reason": reason, "step": step,
                            "alarms": list(held) if held is not None else None}
    iid = None
    if w.data.location == h.name:
        iid = ctx.journal.intent(h.name, "MAKE_SAFE", wafer_ids=[w.wafer_id], lot_id=w.lot_id,
                                 args=args)
    apply_fate(w, fate, reason)
    if iid is not None:
        await finish_make_safe(ctx, h, w, iid, abort_in=active, unload_from=unloadable,
                               unload_s=unload_s)
    ctx.end([w], step, h.name, ok=False)
    if held is not None:
        names = holding(h.kind, held) or held or ("ALARM",)
        raise ToolHeld(h.name, names, f"{reason} (wafer {w.wafer_id} {w.state.lower()})")


async def finish_make_safe(ctx: StepContext, h: ScpiHandle, w: Substrate, iid: int, *,
                           abort_in: set[str], unload_from: set[str], unload_s: float) -> None:
    """Make the tool safe under the journaled MAKE_SAFE intent ``iid``; its outcome once
    done (OK), or FAILED with the reason when the tool could not be made safe (the wafer
    then stays recorded on the tool, and an alarm says so)."""
    try:
        await make_safe(ctx, h, w, abort_in=abort_in, unload_from=unload_from,
                        unload_s=unload_s)
    except ToolDown as exc:
        ctx.journal.outcome(iid, "FAILED", exc.reason)
        ctx.alarms.raise_(h.name, "WAFER_ON_TOOL", f"{w.wafer_id} left on the {h.name}: "
                          f"{exc.reason}", lot_id=w.lot_id, wafer_ids=[w.wafer_id])
        raise
    ctx.journal.outcome(iid, "OK")


#: step → (tool, states to abort in, states to unload from, unload seconds); filled by
#: the step modules (expose, etch) so a resumed make-safe needs no import of them here
SAFE_PARAMS: dict[str, tuple[str, set[str], set[str], float]] = {}


async def resume_make_safe(ctx: StepContext, tool: str,
                           wafers: dict[str, Substrate]) -> list[str]:
    """After a restart: finish every MAKE_SAFE on ``tool`` that a kill interrupted (the
    recorded fate applied first if it never was). Returns what was done, as notes.
    ToolDown / ToolHeld pass, as from the step itself."""
    notes: list[str] = []
    h = ctx.tools[tool]
    for intent in ctx.journal.open_intents():
        if intent.tool != tool or intent.command != "MAKE_SAFE":
            continue
        args = intent.args
        w = wafers.get(intent.wafer_ids[0]) if intent.wafer_ids else None
        if w is None or args.get("step") not in SAFE_PARAMS:
            ctx.journal.outcome(intent.id, "UNKNOWN", "at restart: wafer not in this run")
            raise ToolHeld(tool, ("WAFER_UNKNOWN",),
                           f"{tool}: a make-safe of wafer {list(intent.wafer_ids)} (another "
                           f"lot) was interrupted; check the tool for a wafer")
        apply_fate(w, str(args.get("fate", "hold")), str(args.get("reason", "make-safe")))
        _, active, unloadable, unload_s = SAFE_PARAMS[str(args["step"])]
        notes.append(f"{tool}: resumed making the tool safe after {w.wafer_id}")
        if w.data.location == tool:
            await finish_make_safe(ctx, h, w, intent.id, abort_in=active,
                                   unload_from=unloadable, unload_s=unload_s)
        else:
            ctx.journal.outcome(intent.id, "OK", "at restart: wafer already out")
        if w.data.step:
            ctx.end([w], str(args["step"]), tool, ok=False)
        if args.get("alarms") is not None:
            names = holding(h.kind, tuple(args["alarms"])) or ("ALARM",)
            raise ToolHeld(tool, names, f"{args.get('reason')} (wafer {w.wafer_id})")
    return notes
