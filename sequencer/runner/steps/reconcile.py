"""Reconciliation: deciding, from the tool itself, whether a journaled command ran.

Used in two places: right after a comms loss during a command (``steps.start``)
and at start-up, for every INTENT that has no OUTCOME (``sequencer.runner.recovery``, a
crash). Nothing is sent to a tool before its open intents are reconciled. Queries
only: nothing here changes a tool.

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

It lives in ``steps`` (it imports only ``steps``' shared part, never a step or
``sequencer.runner.recovery``), so a start and the restart both reach it one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sequencer.runner.protocols import OvenProto, ScpiJobTool
from sequencer.runner.steps import ToolHandle
from sequencer.store.journal import Intent


@dataclass(frozen=True)
class Verdict:
    verdict: str  # STARTED | NOT_STARTED | UNKNOWN
    why: str


def _job_no(job: Any) -> int:
    return int(getattr(job, "job_no", 0) or 0)


async def _wafer_on(h: ToolHandle[ScpiJobTool]) -> str | None:
    wid = getattr(await h.q(h.driver.status), "wafer_id", None)
    return None if wid in (None, "", "NONE") else str(wid)


async def read_before(h: ToolHandle[Any], command: str, wafer_ids: list[str]) -> dict[str, Any]:
    """What to read from the tool just before an intent, to reconcile it later."""
    if h.kind == "oven":
        oven: ToolHandle[OvenProto] = h
        return {"tool_batch": int(await oven.q(oven.driver.batch_no))}
    scpi: ToolHandle[ScpiJobTool] = h
    start = command in ("START_EXPOSURE", "START_ETCH")
    rec = await scpi.q(scpi.driver.records, wafer_ids[0] if start else None)  # one line
    before: dict[str, Any] = {"boot": rec.boot, "job_no": _job_no(rec.last)}
    h.boot = before["boot"]  # a later failure compares with it: did the tool reboot?
    if start:
        before["count"] = int(rec.count)
    return before


async def reconcile(h: ToolHandle[Any], intent: Intent) -> Verdict:
    """Ask the tool whether ``intent`` ran (queries only). May raise ToolDown."""
    if h.kind == "oven":
        return await _reconcile_oven(h, intent)
    return await _reconcile_scpi(h, intent)


async def _reconcile_oven(h: ToolHandle[OvenProto], intent: Intent) -> Verdict:
    n, want = int(await h.q(h.driver.batch_no)), int(intent.before.get("batch_no", -1))
    if n == want:
        return Verdict("STARTED", f"oven reports batch {n}, the one intended")
    if n < want:
        return Verdict("NOT_STARTED", f"oven still reports batch {n} < intended {want}")
    return Verdict("UNKNOWN", f"oven reports batch {n}, later than intended {want}")


async def _reconcile_scpi(h: ToolHandle[ScpiJobTool], intent: Intent) -> Verdict:
    b = intent.before
    boot = await h.q(h.driver.boot_id)
    if "boot" in b and boot != b["boot"]:
        return Verdict("UNKNOWN", f"{h.name} rebooted since {intent.command} "
                                  f"(boot {b['boot']} → {boot}): job records reset")
    wafer = intent.wafer_ids[0] if intent.wafer_ids else ""
    cmd = intent.command
    if cmd in ("START_EXPOSURE", "START_ETCH"):
        n = int(await h.q(h.driver.job_count, wafer))
        if n > int(b.get("count", 0)):
            return Verdict("STARTED", f"job count for {wafer} {b.get('count')} → {n}")
        return Verdict("NOT_STARTED", f"job count for {wafer} still {n}")
    if cmd == "START_DEVELOP":
        job = await h.q(h.driver.last_job)
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
