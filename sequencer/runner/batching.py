"""The runner's side of the scheduling policy: the line's state for ``policy``, and what
its answers mean here (the exposure gate's wait, the oven's batch, wafers held late).

The rules themselves are ``sequencer.runner.policy`` (pure functions, one copy, also
run by the planner). This mixin of :class:`sequencer.runner.scheduler.Scheduler` reads
the scheduler's wafers and tools into a :class:`policy.LineState` and acts on the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog

from sequencer.runner import policy
from sequencer.runner.steps.cure import develop_cure_breach, expected_cure_s
from sequencer.states.substrate import Substrate

log = structlog.get_logger("viaform.scheduler")


class BatchPolicy:
    """The policy's state and the oven's and exposure gate's answers (module docstring)."""

    # state kept by the Scheduler
    wafers: list[Substrate]
    flows: dict[str, Any]
    cycle: list[float]
    oven_busy: dict[str, tuple[float, float]]
    busy: dict[str, Any]  # tool → workers.Busy
    expose_t0: dict[str, float]
    down: dict[str, str]
    ctx: Any
    clock: Any
    if TYPE_CHECKING:  # and the Scheduler's methods
        def _exposure_open(self) -> bool: ...

        def _may_run(self, w: Substrate) -> bool: ...

        def _taken(self, w: Substrate) -> bool: ...

        def _tool_of(self, w: Substrate) -> str: ...

        def _hold(self, wafers: Iterable[Substrate], reason: str) -> None: ...

        async def _idle(self, wall_s: float) -> None: ...

    def _cycle(self) -> float:
        return sum(self.cycle) / len(self.cycle) if self.cycle else self.ctx.config.expose_cycle_s

    def _oven_poll_s(self) -> float:
        return max((self.ctx.tools[t].poll_s for t in self.ctx.of_kind("oven")), default=0.0)

    def _family(self, w: Substrate) -> str:
        return str(self.flows[w.lot_id].cure.name)

    def _line_state(self) -> policy.LineState:
        """The line now, as the policy reads it: the live wafers, less the repeats that
        ``policy.queued`` lets it leave out (a waiting wafer behind another of its family:
        most of a queue of lots, and built at every decision)."""
        cfg, now = self.ctx.config, self.clock.now()
        families = {}
        for flow in {id(f): f for f in self.flows.values()}.values():
            families[flow.cure.name] = policy.Family(flow.cure.name,
                                                     cfg.batch_size(flow.cure.batch_size),
                                                     expected_cure_s(flow.cure, cfg))
        taken = {id(x) for b in self.busy.values() for x in b.wafers}  # ``_taken``, once
        waiting: set[str] = set()  # families whose first waiting wafer is in
        rows = []
        for w in self.wafers:
            if w.final:  # the policy ignores it
                continue
            d, family, may_run, is_taken = w.data, self._family(w), self._may_run(w), \
                id(w) in taken
            if not d.developed and not d.step and not is_taken and may_run:  # queued
                if family in waiting:
                    continue
                waiting.add(family)
            rows.append(policy.Wafer(w.wafer_id, family, d.developed, d.cured, d.etched,
                                     d.step, self._tool_of(w) if d.step else "",
                                     d.develop_end, d.cure_end, True, may_run, is_taken))
        wafers = tuple(rows)
        ovens = tuple(sum(self.oven_busy[t]) if t in self.oven_busy else now
                      for t in self.ctx.of_kind("oven") if t not in self.down)
        return policy.LineState(
            now=now, wafers=wafers, families=families, cycle_s=self._cycle(),
            q_develop_cure_s=cfg.q_develop_cure_s, margin_s=cfg.margin_s,
            oven_poll_s=self._oven_poll_s(), oven_free=ovens,
            exposures_since=tuple(self.expose_t0.values()),
            exposure_open=self._exposure_open())

    def _by_id(self, ids: Iterable[str]) -> list[Substrate]:
        index = {w.wafer_id: w for w in self.wafers}
        return [index[i] for i in ids]

    async def _gate(self) -> None:
        """Do not develop a wafer that could not start its cure in time: wait while the
        ovens are expected to be busy past (its develop end + the develop→cure limit)."""
        while True:
            wait = policy.exposure_wait(self._line_state())
            if wait <= 0:
                return
            log.info("exposure waits: the oven would break the queue time", wait_s=round(wait))
            await self._idle(self.clock.to_wall(wait))

    def _waiting_for_cure(self) -> list[Substrate]:
        return self._by_id(w.wafer_id for w in policy.waiting_for_cure(self._line_state()))

    def _pick_batch(self, oven: str) -> tuple[list[Substrate], Any] | float | None:
        """The batch the free ``oven`` starts now; else the tool time to look again if
        nothing happens first (a partial batch falls due), or None: only an event can
        change the answer. Holds wafers past their queue time (with the reason)."""
        decision = policy.pick_batch(self._line_state(), self.ctx.tools[oven].poll_s)
        for w in self._by_id(decision.late):
            self._hold([w], develop_cure_breach(self.ctx, w) or
                       "held for disposition: develop→cure queue time")
        batch = decision.batch
        if batch is None:
            return decision.wake_at
        ws = self._by_id(batch.wafer_ids)
        if batch.partial_for is not None:
            log.info("partial batch: queue-time pressure", recipe=batch.family, wafers=len(ws),
                     deadline_in_s=round(batch.partial_for - self.clock.now()))
        return ws, self.flows[ws[0].lot_id].cure
