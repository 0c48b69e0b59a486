"""Sending a start: a command that changes a tool, under a journaled INTENT/OUTCOME pair.

Imports ``steps.reconcile`` (a start lost to a comms failure is reconciled with the tool
at once); ``sequencer.runner.recovery`` (the restart) imports the same, so the arrows point one
way: recovery → steps.start / steps.reconcile → steps.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from drivers.errors import CommsError, ToolError
from sequencer.runner.steps import StepContext, StepFailed, ToolDown, ToolHandle, due, log
from sequencer.runner.steps.checks import check_job_count
from sequencer.runner.steps.reconcile import Verdict, read_before, reconcile
from sequencer.states.substrate import Substrate
from sequencer.store.journal import Intent

#: the starts a tool counts in its job records (``JOB:COUNt? <wafer>``)
JOB_STARTS = ("START_EXPOSURE", "START_ETCH")


async def send_start(ctx: StepContext, h: ToolHandle[Any], command: str,
                     wafers: list[Substrate], send: Callable[[], object], *,
                     before: dict[str, Any] | None = None,
                     record: dict[str, Any] | None = None, phase: str | None = None) -> None:
    """Send a command that changes the tool, under an INTENT/OUTCOME pair.

    Never retried blind: on a CommsError the tool is recovered and read back, and
    the journaled intent is reconciled with the tool (job count, last job, boot id,
    batch number). Started → follow it; not started → send again (once); cannot
    be known → StepFailed("hold"). A refusal (ToolRejected/InterlockError) is
    journaled and raised. ``phase``, when given, is marked on the wafers in the
    same journal transaction as the OUTCOME, so a crash can never leave a start
    journaled as made while the wafer's phase says it is still to be made.

    A START_EXPOSURE / START_ETCH (``JOB_STARTS``) is first checked against the tool's
    job records, from the reading its intent keeps (``steps.checks.check_job_count``):
    a tool that reports starts of the wafer this journal does not know holds it, and
    nothing is sent.

    ``send`` is the driver's bound method, its arguments bound with it
    (``partial(h.driver.load, wafer_id)``): it runs once per attempt, through ``h.cmd``.
    """
    ids = [w.wafer_id for w in wafers]
    for _ in range(2):
        seen = await read_before(h, command, ids)
        if command in JOB_STARTS:  # the tool's job records first: the same reading
            check_job_count(ctx, h, ids[0], int(seen["count"]), seen["boot"])
        iid = ctx.journal.intent(h.name, command, wafer_ids=ids, lot_id=wafers[0].lot_id,
                                 args=record or {}, before={**seen, **(before or {})})
        try:
            await h.cmd(send)
        except CommsError as exc:
            await h.recover(f"{command}: {exc}")
            verdict = await reconcile(h, ctx.journal.get_intent(iid))
            with ctx.journal.atomic():
                ctx.journal.outcome(iid, verdict.verdict, verdict.why)
                if phase and verdict.verdict == "STARTED":
                    ctx.mark(wafers, phase)
            log.warning("start reconciled after comms loss", tool=h.name, command=command,
                        verdict=verdict.verdict, why=verdict.why)
            if verdict.verdict == "STARTED":
                return
            if verdict.verdict == "UNKNOWN":
                raise StepFailed("hold", f"held for disposition: {command}: {verdict.why}") \
                    from exc
            continue
        except ToolError as exc:
            # An alarm that happens just after the tool accepted the start queues its own
            # code, which then reads like a refusal of the start: ask the tool what it did.
            checked = await _refusal_checked(h, ctx.journal.get_intent(iid))
            if checked is None or checked.verdict != "STARTED":
                ctx.journal.outcome(iid, "REFUSED", str(exc))
                raise
            with ctx.journal.atomic():
                ctx.journal.outcome(iid, "STARTED", f"made, then the tool reported: {exc}")
                if phase:
                    ctx.mark(wafers, phase)
            log.warning("start made; the error that followed is the tool's own report",
                        tool=h.name, command=command, error=str(exc))
            return
        with ctx.journal.atomic():
            ctx.journal.outcome(iid, "OK")
            if phase:
                ctx.mark(wafers, phase)
        return
    raise StepFailed("hold", f"held for disposition: {command} not sent after two comms losses")


async def _refusal_checked(h: ToolHandle[Any], intent: Intent) -> Verdict | None:
    """The tool's own record of a start it seemed to refuse (None if it cannot tell)."""
    try:
        return await reconcile(h, intent)
    except (ToolError, ToolDown):
        return None


async def load_wafer(ctx: StepContext, h: ToolHandle[Any], w: Substrate,
                     phases: tuple[str, ...], load_s: float, what: str) -> None:
    """The LOAD both SCPI steps share: LOAD (journaled, never blind), then READY within
    ``load_s`` (ALARM or IDLE instead fails the step); each phase marked."""
    sent = due(w, "load", phases)
    if sent:
        await send_start(ctx, h, "LOAD", [w], partial(h.driver.load, w.wafer_id), phase="load")
    if due(w, "loaded", phases):
        await h.wait(h.driver.state, {"READY"}, load_s, what, fail={"ALARM", "IDLE"},
                     just_started=sent)
        ctx.mark([w], "loaded")


async def unload_and_out(ctx: StepContext, h: ToolHandle[Any], w: Substrate,
                         phases: tuple[str, ...], unload_s: float, what: str) -> None:
    """The tail both SCPI steps share: UNLOAD (journaled, never blind), wait for IDLE
    within ``unload_s``, take the wafer back to the stocker; each phase marked."""
    sent = due(w, "unload", phases)
    if sent:
        await send_start(ctx, h, "UNLOAD", [w], h.driver.unload, phase="unload")
    if due(w, "unloaded", phases):
        await h.wait(h.driver.state, {"IDLE"}, unload_s, what, just_started=sent)
        ctx.mark([w], "unloaded")
    if due(w, "out", phases):
        await ctx.move([w], "stocker", phase="out")
