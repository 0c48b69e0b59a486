"""Reconciliation: deciding, from the tool itself, whether a journaled command ran.

Used in two places: right after a comms loss during a command (``send_start``)
and at start-up, for every INTENT that has no OUTCOME (a crash). Nothing is
sent to a tool before its open intents are reconciled.

Rules (exposure cell and etcher, from their manuals' job records):
- ``SYSTem:BOOT?`` differs from the one read before the intent → job records
  were reset at power-on: the fate cannot be known → UNKNOWN (wafer held).
- START_EXPOSURE / START_ETCH: ``JOB:COUNt? <wafer>`` greater than the count
  read before the intent → STARTED, equal → NOT_STARTED.
- START_DEVELOP: ``JOB:LAST?`` newer than the job number read before, for this
  wafer, kind DEVELOP → STARTED; same number → NOT_STARTED; else UNKNOWN.
- LOAD: the tool holds this wafer → STARTED; IDLE without a wafer → NOT_STARTED.
- UNLOAD: UNLOADING/VENTING, or IDLE without a wafer → STARTED; the wafer still
  there in a state that accepts UNLOAD → NOT_STARTED.
Oven: START with batch number N: tool batch number == N → STARTED, < N →
NOT_STARTED (the journal allocates N above anything the tool had), > N → UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from .journal import Intent
from .protocols import state_name
from .substrate import Substrate

if TYPE_CHECKING:
    from .steps import StepContext, ToolHandle

log = structlog.get_logger("viaform.recovery")

# The phase a step journals once a command was accepted (see steps/*.py).
SENT_PHASE = {"LOAD": "load", "START_EXPOSURE": "start_exposure",
              "START_DEVELOP": "start_develop", "UNLOAD": "unload",
              "START_ETCH": "start_etch", "START": "start"}


@dataclass(frozen=True)
class Verdict:
    verdict: str  # STARTED | NOT_STARTED | UNKNOWN
    why: str


def _job_no(job: Any) -> int:
    return int(getattr(job, "job_no", 0) or 0)


async def _wafer_on(h: ToolHandle) -> str | None:
    wid = getattr(await h.q("status"), "wafer_id", None)
    return None if wid in (None, "", "NONE") else str(wid)


async def read_before(h: ToolHandle, command: str, wafer_ids: list[str]) -> dict[str, Any]:
    """What to read from the tool just before an intent, to reconcile it later."""
    if h.name == "oven":
        return {"tool_batch": int(await h.q("batch_no"))}
    before: dict[str, Any] = {"boot": await h.q("boot_id"),
                              "job_no": _job_no(await h.q("last_job"))}
    h.boot = before["boot"]  # a later failure compares with it: did the tool reboot?
    if command in ("START_EXPOSURE", "START_ETCH"):
        before["count"] = int(await h.q("job_count", wafer_ids[0]))
    return before


async def reconcile(h: ToolHandle, intent: Intent) -> Verdict:
    """Ask the tool whether ``intent`` ran (queries only). May raise ToolDown."""
    b = intent.before
    if h.name == "oven":
        n, want = int(await h.q("batch_no")), int(b.get("batch_no", -1))
        if n == want:
            return Verdict("STARTED", f"oven reports batch {n}, the one intended")
        if n < want:
            return Verdict("NOT_STARTED", f"oven still reports batch {n} < intended {want}")
        return Verdict("UNKNOWN", f"oven reports batch {n}, later than intended {want}")
    boot = await h.q("boot_id")
    if "boot" in b and boot != b["boot"]:
        return Verdict("UNKNOWN", f"{h.name} rebooted since {intent.command} "
                                  f"(boot {b['boot']} → {boot}): job records reset")
    wafer = intent.wafer_ids[0] if intent.wafer_ids else ""
    cmd = intent.command
    if cmd in ("START_EXPOSURE", "START_ETCH"):
        n = int(await h.q("job_count", wafer))
        if n > int(b.get("count", 0)):
            return Verdict("STARTED", f"job count for {wafer} {b.get('count')} → {n}")
        return Verdict("NOT_STARTED", f"job count for {wafer} still {n}")
    if cmd == "START_DEVELOP":
        job = await h.q("last_job")
        no = _job_no(job)
        if no == int(b.get("job_no", -1)):
            return Verdict("NOT_STARTED", f"last job still {no}")
        if getattr(job, "wafer_id", None) == wafer and str(getattr(job, "kind", "")) == "DEVELOP":
            return Verdict("STARTED", f"last job {no} is DEVELOP of {wafer}")
        return Verdict("UNKNOWN", f"last job {no} is not a DEVELOP of {wafer}")
    st, on = await h.state(), await _wafer_on(h)
    if cmd == "LOAD":
        if on == wafer:
            return Verdict("STARTED", f"{wafer} is on the tool ({st})")
        if st == "IDLE" and on is None:
            return Verdict("NOT_STARTED", "tool idle without a wafer")
        return Verdict("UNKNOWN", f"tool {st} with wafer {on}")
    if cmd == "UNLOAD":
        if st in ("UNLOADING", "VENTING") or (st == "IDLE" and on is None):
            return Verdict("STARTED", f"tool {st}, wafer {on}")
        if on == wafer and st in ("READY", "EXPOSED", "COMPLETE", "ALARM"):
            return Verdict("NOT_STARTED", f"{wafer} still on the tool ({st})")
        return Verdict("UNKNOWN", f"tool {st} with wafer {on}")
    return Verdict("UNKNOWN", f"no rule to reconcile {cmd}")


async def reconcile_at_start(ctx: StepContext, wafers: dict[str, Substrate]) -> list[str]:
    """Settle every open intent before anything is sent; returns what was decided.

    STARTED → the wafer's phase becomes the command's sent-phase (the step follows
    the running job); NOT_STARTED → the phase stays (the step sends it again);
    UNKNOWN or tool unreachable → the wafer is held for disposition. A MOVE with no
    outcome is re-issued (handling moves are idempotent).
    """
    from .steps import ToolDown

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
                if intent.tool == "oven":
                    w.data.cure_batch = int(intent.before.get("batch_no", 0)) or None
            ctx.save(w)
    notes += _catch_up_phases(ctx, wafers)
    return notes


def _catch_up_phases(ctx: StepContext, wafers: dict[str, Substrate]) -> list[str]:
    """A wafer whose last start is journaled as made (OK / STARTED) but whose phase is
    still before it gets the phase of that start, so the step follows the job and never
    sends it again. The step writes the two together (``send_start(phase=…)``); this
    repairs a journal where they came apart (an older version, a hand-edited file)."""
    from .steps import cure, etch, expose

    steps = {"expose": ("exposure", expose.PHASES), "etch": ("etcher", etch.PHASES),
             "cure": ("oven", cure.PHASES)}
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
        command = last.get((tool, w.wafer_id))
        phase = SENT_PHASE.get(command or "")
        if phase in order and order.index(phase) > order.index(w.data.phase or ""):
            notes.append(f"{w.wafer_id}: {command} was made; phase {w.data.phase!r} → {phase!r}")
            log.warning("phase caught up with the journal", wafer_id=w.wafer_id,
                        command=command, phase=phase, was=w.data.phase)
            w.data.phase = phase
            ctx.save(w)
    return notes


def restore_wafer(w: Substrate, state: str, data: dict[str, Any]) -> None:
    """A wafer back to its journaled state (``set_state``, no callbacks) and data."""
    w.restore(state, data)
    log.debug("wafer restored", wafer_id=w.wafer_id, state=state_name(state),
              phase=w.data.phase, step=w.data.step)
