"""Checks before a start: the tool's own job records, and every recipe setting read back.

- **Job records are the truth.** Before a wafer goes onto the exposure cell (or the
  etcher), and again in the reading taken for the intent of its EXPOSURE:STARt /
  ETCH:STARt (``steps.start``), ``JOB:COUNt? <wafer>`` is compared with the starts this
  journal knows for
  that wafer since the tool's current boot (START_EXPOSURE / START_ETCH journaled as
  made). A tool that reports more than the journal knows (a lot rerun with a fresh
  journal, a wafer id reused under another lot) holds the wafer for disposition; it is
  never processed again.
- **Read-back.** Right before EXPOSURE:STARt / ETCH:STARt every recipe setting is read
  from the tool and compared with what was sent, within the tool's resolution (reals
  are NR2 with 0.1 resolution: half a step, 0.05, is rounding; more is a change). A
  mismatch refuses the start: the wafer is held with the setting, the sent and the
  read value, and the step's failure path leaves the tool safe.
"""

from __future__ import annotations

from typing import Any

from sequencer.runner.protocols import ScpiJobTool
from sequencer.runner.steps import StepContext, StepFailed, ToolHandle
from sequencer.states.substrate import Substrate

#: half the tools' NR2 resolution (0.1): a read-back this close is the same value
REAL_TOLERANCE = 0.05 + 1e-9
MODELS = {"exposure": ("LX-365", "exposure", "START_EXPOSURE"),
          "etcher": ("PE-200", "etch", "START_ETCH")}


def known_starts(ctx: StepContext, tool: str, wafer_id: str, boot: Any,
                 kind: str | None = None) -> int:
    """Starts of ``wafer_id`` on ``tool`` (of ``kind``, default: named by its kind) that
    this journal made since boot ``boot``."""
    command = MODELS[kind or tool][2]
    return sum(1 for c in ctx.journal.commands(tool, command, wafer_id)
               if c.outcome in ("OK", "STARTED") and c.before.get("boot") == boot)


async def check_job_records(ctx: StepContext, h: ToolHandle[ScpiJobTool], w: Substrate) -> None:
    """StepFailed("hold") if the tool reports starts of ``w`` this journal does not know
    (read now: before the wafer goes onto the tool)."""
    rec = await h.q(h.driver.records, w.wafer_id)  # boot id and count from one instant
    check_job_count(ctx, h, w.wafer_id, int(rec.count), rec.boot)


def check_job_count(ctx: StepContext, h: ToolHandle[Any], wafer_id: str, count: int,
                    boot: Any) -> None:
    """StepFailed("hold") if ``count`` starts of ``wafer_id`` (read from the tool with boot
    id ``boot``) are more than this journal made since that boot. ``steps.start`` checks
    each START_EXPOSURE / START_ETCH with the reading its intent keeps."""
    model, what, _ = MODELS[h.kind]
    known = known_starts(ctx, h.name, wafer_id, boot, h.kind)
    if count > known:
        unknown = count - known
        noun = {"exposure": ("exposure", "exposures"), "etch": ("etch", "etches")}[what][
            unknown != 1]
        raise StepFailed("hold", f"{wafer_id}: the {model} reports {unknown} {noun} of "
                                 f"{wafer_id} that this journal does not know: held")


def _same(sent: Any, read: Any) -> bool:
    if isinstance(sent, bool) or isinstance(read, bool):
        return bool(sent) == bool(read)
    if isinstance(sent, int | float) and isinstance(read, int | float):
        return abs(float(sent) - float(read)) <= REAL_TOLERANCE
    return str(sent) == str(read)


async def check_readback(h: ToolHandle[ScpiJobTool], wanted: dict[str, Any]) -> None:
    """Every setting of ``wanted`` read back from the tool; StepFailed("hold") naming the
    first ones that differ (setting, sent, read)."""
    got = await h.q(h.driver.get_many, list(wanted))  # one line: one round trip
    wrong = [f"{name} sent {sent}, tool reads {got[name]}" for name, sent in wanted.items()
             if not _same(sent, got[name])]
    if wrong:
        raise StepFailed("hold", f"held for disposition: setting read-back on the {h.name} "
                                 f"before the start: {'; '.join(wrong)}")
