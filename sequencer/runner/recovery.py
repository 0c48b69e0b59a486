"""Recovery at start-up: every INTENT without an OUTCOME (a crash) settled with the tool.

Nothing is sent to a tool before its open intents are reconciled. The rules that ask a
tool whether a command ran are in ``sequencer.runner.steps.reconcile`` (a start lost to a
comms failure mid-step uses them too). This module imports ``steps`` and the steps'
phase lists; no module of ``steps`` imports it.
"""

from __future__ import annotations

import structlog

import sequencer.runner.steps.cure as cure
import sequencer.runner.steps.etch as etch
import sequencer.runner.steps.expose as expose
from sequencer.runner.steps import StepContext, ToolDown
from sequencer.runner.steps.reconcile import Verdict, reconcile
from sequencer.states.substrate import Substrate

log = structlog.get_logger("viaform.recovery")

# The phase a step journals once a command was accepted (see steps/*.py).
SENT_PHASE = {"LOAD": "load", "START_EXPOSURE": "start_exposure",
              "START_DEVELOP": "start_develop", "UNLOAD": "unload",
              "START_ETCH": "start_etch", "START": "start"}


async def reconcile_at_start(ctx: StepContext, wafers: dict[str, Substrate]) -> list[str]:
    """Settle every open intent before anything is sent; returns what was decided.

    STARTED → the wafer's phase becomes the command's sent-phase (the step follows
    the running job); NOT_STARTED → the phase stays (the step sends it again);
    UNKNOWN or tool unreachable → the wafer is held for disposition. A MOVE with no
    outcome is re-issued (handling moves are idempotent).
    """
    notes: list[str] = []
    for intent in ctx.journal.open_intents():
        affected = [wafers[i] for i in intent.wafer_ids if i in wafers]
        if intent.command == "MAKE_SAFE":  # finished by the tool's worker before new work
            notes.append(f"{intent.tool} MAKE_SAFE {list(intent.wafer_ids)}: interrupted; "
                         f"resumed before any new work")
            continue
        if intent.command == "CLEAR_ALARMS":  # a person acknowledged; the tool is read again
            ctx.journal.outcome(intent.id, "UNKNOWN", "at restart: the tool is read again")
            continue
        if intent.tool == "handling":
            ctx.journal.outcome(intent.id, "REISSUE", "move outcome unknown; re-issued")
            for w in affected:
                w.data.location = "?"
            continue
        h = ctx.tools.get(intent.tool)
        try:
            if h is None:
                raise ToolDown(intent.tool, "no such tool")
            v = await reconcile(h, intent)
        except ToolDown as exc:
            v = Verdict("UNKNOWN", f"{intent.tool} unreachable at restart: {exc.reason}")
        ctx.journal.outcome(intent.id, v.verdict, f"at restart: {v.why}")
        notes.append(f"{intent.tool} {intent.command} {list(intent.wafer_ids)}: {v.verdict} "
                     f"({v.why})")
        log.info("intent reconciled at restart", tool=intent.tool, command=intent.command,
                 wafers=list(intent.wafer_ids), verdict=v.verdict, why=v.why)
        for w in affected:
            if w.final:
                continue
            if v.verdict == "UNKNOWN":
                w.hold(reason=f"held for disposition: {intent.command} at restart: {v.why}")
            elif v.verdict == "STARTED":
                w.data.phase = SENT_PHASE.get(intent.command, w.data.phase)
                if ctx.kind(intent.tool) == "oven":
                    w.data.cure_batch = int(intent.before.get("batch_no", 0)) or None
            ctx.save(w)
    notes += _catch_up_phases(ctx, wafers)
    return notes


def _catch_up_phases(ctx: StepContext, wafers: dict[str, Substrate]) -> list[str]:
    """A wafer whose last start is journaled as made (OK / STARTED) but whose phase is
    still before it gets the phase of that start, so the step follows the job and never
    sends it again. The step writes the two together (``send_start(phase=…)``); this
    repairs a journal where they came apart (an older version, a hand-edited file)."""
    steps = {"expose": ("exposure", expose.PHASES), "etch": ("etcher", etch.PHASES),
             "cure": ("oven", cure.PHASES)}  # step → (the tool a journal without
    # ``data.tool``, from before several tools of a kind, ran it on; its phases)
    last: dict[tuple[str, str], str] = {}
    for cmd in ctx.journal.commands():
        if cmd.outcome in ("OK", "STARTED") and cmd.command in SENT_PHASE:
            for wid in cmd.wafer_ids:
                last[(cmd.tool, wid)] = cmd.command
    notes = []
    for w in wafers.values():
        if w.final or w.data.step not in steps:
            continue
        tool, order = steps[w.data.step]
        tool = w.data.tool or tool
        command = last.get((tool, w.wafer_id))
        phase = SENT_PHASE.get(command or "")
        if phase in order and order.index(phase) > order.index(w.data.phase or ""):
            notes.append(f"{w.wafer_id}: {command} was made; phase {w.data.phase!r} → {phase!r}")
            log.warning("phase caught up with the journal", wafer_id=w.wafer_id,
                        command=command, phase=phase, was=w.data.phase)
            w.data.phase = phase
            ctx.save(w)
    return notes
