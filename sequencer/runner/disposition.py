"""Held wafers' disposition in the daemon: an engineer's release or scrap.

A mixin of :class:`sequencer.runner.serving.ServingScheduler` (``EngineLine.release_wafers``
/ ``scrap_wafers`` call it; the HTTP routes audit it). See docs/operations.md, "Held
wafers: release or scrap". ``Refused`` / ``Unknown`` are the serving scheduler's answers
to a control request that does not fit the state (nothing changed).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sequencer.states.job import ProcessJob
from sequencer.states.substrate import Substrate


class Refused(Exception):
    """A control request that does not fit the current state; nothing was changed."""


class Unknown(Refused):
    """No such lot or tool."""


class Disposition:
    """See the module docstring."""

    # state kept by the scheduler
    wafers: list[Substrate]
    busy: dict[str, Any]
    jobs: dict[str, ProcessJob]
    ctx: Any
    changed: asyncio.Event
    if TYPE_CHECKING:
        def _job_changed(self, job: ProcessJob, src: str, dst: str) -> None: ...

    def dispose_wafers(self, wafer_ids: list[str], action: str, reason: str,
                       who: str) -> list[Substrate]:
        """Release (on to the next step not done) or scrap (REJECTED) held wafers.

        All or nothing: every wafer is checked first (known to this engine, STOPPED, in
        the stocker for a release, no tool still being made safe with it, its lot not
        aborted) and the first refusal raises ``Refused`` / ``Unknown`` with nothing
        changed; then every transition is journaled in one transaction. A released
        wafer's finished job (PROCESS_COMPLETE / STOPPED: every wafer was final) is
        re-opened to QUEUED, journaled, and starts again like a new job when its wafer's
        next step is picked; the workers are woken.
        """
        from sequencer.states.substrate import dispose, disposition_refusal, held_from

        by_id = {w.wafer_id: w for w in self.wafers}
        unknown = [i for i in wafer_ids if i not in by_id]
        if unknown:
            raise Unknown(f"no wafer {unknown[0]!r} in this daemon's lots")
        in_step = {w.wafer_id for b in self.busy.values() for w in b.wafers}
        for wid in wafer_ids:
            w = by_id[wid]
            why = disposition_refusal(w, action)
            if why is None and wid in in_step:
                why = f"{wid}: its tool is still being made safe; try again when it is"
            if why is None and action == "release" and \
                    self.jobs[w.lot_id].state in ("ABORTING", "ABORTED"):
                why = f"{wid}: lot {w.lot_id} is {self.jobs[w.lot_id].state}: nothing resumes"
            if why is not None:
                raise Refused(why)
        journal = self.ctx.journal
        with journal.atomic():
            for wid in wafer_ids:
                dispose(by_id[wid], action, reason, who, held_from(journal.transitions(wid)))
            if action == "release":
                for lot_id in dict.fromkeys(by_id[i].lot_id for i in wafer_ids):
                    self._reopen(lot_id)
        self.changed.set()
        return [by_id[i] for i in wafer_ids]

    def _reopen(self, lot_id: str) -> None:
        job = self.jobs[lot_id]
        if not job.final:
            return
        src = job.state
        job.restore("QUEUED")
        self._job_changed(job, src, "QUEUED")
