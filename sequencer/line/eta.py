"""The daemon's lot ETAs: the planner run from the line's current state, debounced.

Every event of the engine's scheduler (a step started or ended, a wafer's or job's state
changed …) asks for a new plan; the plan is made at most once per ``debounce_wall_s``,
from a snapshot taken on the engine loop (so it is consistent), computed on a worker
thread (so a plan never delays a tool's poll). ``etas`` maps each unfinished lot to its
predicted completion in unix time; ``last`` is the whole plan (``/plan``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from sequencer.runner.planner import Plan, PlanWafer, Running, plan_from

log = structlog.get_logger("viaform.eta")

DEBOUNCE_WALL_S = 1.0


def snapshot(sched: Any) -> tuple[list[PlanWafer], list[Running], float]:
    """The scheduler's wafers and running steps, as the planner takes them (engine loop)."""
    flows = sched.flows
    wafers = [PlanWafer(w.wafer_id, w.lot_id, flows[w.lot_id], w.data.developed,
                        w.data.cured, w.data.etched, develop_end=w.data.develop_end,
                        cure_end=w.data.cure_end, held=w.final)
              for w in list(sched.wafers) if w.lot_id in flows]
    started = {d.tool: d.t for d in sched.decisions}  # each tool's last claim
    now = sched.clock.now()
    running = [Running(tool, b.step, tuple(w.wafer_id for w in b.wafers),
                       started.get(tool, now)) for tool, b in list(sched.busy.items())]
    return wafers, running, now


class LotEtas:
    """See the module docstring. ``request()`` on the engine loop; never raises."""

    def __init__(self, debounce_wall_s: float = DEBOUNCE_WALL_S) -> None:
        self.debounce_wall_s = debounce_wall_s
        self.etas: dict[str, float] = {}
        self.last: Plan | None = None
        self._pending: asyncio.Task[None] | None = None
        self.sched: Any = None

    def request(self) -> None:
        """A state change: a new plan within the debounce period (one at a time)."""
        if self.sched is None or (self._pending is not None and not self._pending.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the engine loop (never expected): the next event asks
            return
        self._pending = loop.create_task(self._replan())

    async def _replan(self) -> None:
        await asyncio.sleep(self.debounce_wall_s)
        sched = self.sched
        try:
            wafers, running, now = snapshot(sched)
            kinds = {n: h.kind for n, h in sched.ctx.tools.items()}
            p = await asyncio.to_thread(plan_from, wafers, running, kinds, sched.ctx.config,
                                        now)
        except Exception:  # an ETA must never stop the line
            log.exception("planning the ETAs failed")
            return
        scale = sched.clock.time_scale
        live = {w.lot_id for w in wafers if not w.held}
        self.etas = {lot: (now + end) / scale for lot, end in p.lot_end.items() if lot in live}
        self.last = p
