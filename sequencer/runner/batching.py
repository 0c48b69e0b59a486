"""When the batch oven starts a batch, and when the exposure cell may develop another wafer.

The oven is the line's bottleneck. A batch starts when ``batch_size`` developed
wafers of one cure recipe wait, or when waiting for the next wafer would break the
oldest one's develop→cure queue time, or when no more can arrive; the exposure
cell does not develop a wafer the oven could not start curing within its queue
time. A mixin of :class:`sequencer.runner.scheduler.Scheduler`, whose state it reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog

from sequencer.runner.steps.cure import develop_cure_breach, expected_cure_s
from sequencer.states.substrate import Substrate

log = structlog.get_logger("viaform.scheduler")

UNLOAD_ETA_S = 60.0  # a developed wafer still being unloaded is this close (tool s)


class BatchPolicy:
    """The oven's fill decision and the exposure gate (see the module docstring)."""

    # state kept by the Scheduler
    wafers: list[Substrate]
    flows: dict[str, Any]
    cycle: list[float]
    oven_busy: dict[str, tuple[float, float]]
    expose_t0: dict[str, float]
    down: dict[str, str]
    ctx: Any
    clock: Any
    if TYPE_CHECKING:  # and the Scheduler's methods
        @property
        def exposure_done(self) -> bool: ...

        def _may_run(self, w: Substrate) -> bool: ...

        def _taken(self, w: Substrate) -> bool: ...

        def _hold(self, wafers: Iterable[Substrate], reason: str) -> None: ...

        async def _idle(self, wall_s: float) -> None: ...

    def _cycle(self) -> float:
        return sum(self.cycle) / len(self.cycle) if self.cycle else self.ctx.config.expose_cycle_s

    def _oven_poll_s(self) -> float:
        return max((self.ctx.tools[t].poll_s for t in self.ctx.of_kind("oven")), default=0.0)

    def _next_cure_start(self) -> float:
        """When a wafer whose exposure starts now could start its cure (estimate): on the
        first oven free (that is not down), after a batch that must go first."""
        cfg, now = self.ctx.config, self.clock.now()
        dev = now + self._cycle()
        free = sorted(sum(self.oven_busy[t]) if t in self.oven_busy else now
                      for t in self.ctx.of_kind("oven") if t not in self.down) or [now]
        pool = self._waiting_for_cure()
        if pool:
            oldest = min(w.data.develop_end or now for w in pool)
            forced = oldest + cfg.q_develop_cure_s - cfg.margin_s - self._oven_poll_s()
            # that batch goes before this wafer is developed (half a cycle of hysteresis,
            # so the oven's own decision, made later, cannot flip the other way)
            if dev + self._cycle() / 2 >= forced:
                free[0] = max(free[0], forced) + expected_cure_s(
                    self.flows[pool[0].lot_id].cure, cfg)
        return max(min(free), dev)

    async def _gate(self) -> None:
        """Do not develop a wafer that could not start its cure in time: wait while the
        oven is expected to be busy past (its develop end + the develop→cure limit)."""
        cfg = self.ctx.config
        while True:
            latest = self.clock.now() + self._cycle() + cfg.q_develop_cure_s - cfg.margin_s
            early = self._next_cure_start() - latest
            if early <= 0:
                return
            log.info("exposure waits: the oven would break the queue time", wait_s=round(early))
            await self._idle(self.clock.to_wall(min(early, 600.0)))

    def _waiting_for_cure(self) -> list[Substrate]:
        return [w for w in self.wafers if not w.final and w.data.developed
                and not w.data.cured and w.data.step == "" and self._may_run(w)
                and not self._taken(w)]

    def _can_still_come(self, cure_name: str) -> int:
        if self.exposure_done:
            return 0
        return sum(1 for w in self.wafers if not w.final
                   and (not w.data.developed or w.data.step == "expose")
                   and self.flows[w.lot_id].cure.name == cure_name and self._may_run(w))

    def _pick_batch(self, oven: str) -> tuple[list[Substrate], Any] | None:
        """The batch the free ``oven`` starts now, or None to wait. Holds wafers past their
        queue time. Families (cure recipes) never share a batch; the family whose oldest
        wafer waited longest (the least develop→cure slack) goes first."""
        cfg = self.ctx.config
        for w in self._waiting_for_cure():
            if why := develop_cure_breach(self.ctx, w):
                self._hold([w], why)
        groups: dict[str, list[Substrate]] = {}
        for w in sorted(self._waiting_for_cure(), key=lambda x: x.data.develop_end or 0):
            groups.setdefault(self.flows[w.lot_id].cure.name, []).append(w)
        cycle = self._cycle()
        for name, ws in groups.items():
            recipe = self.flows[ws[0].lot_id].cure
            size = int(recipe.batch_size)
            coming = self._can_still_come(name)
            if len(ws) >= size or coming == 0:
                return ws[:size], recipe
            in_flight = any(w.data.developed and w.data.step == "expose" and not w.final
                            for w in self.wafers)  # developed, being unloaded
            now = self.clock.now()
            # the next wafer's arrival: the first exposure in progress to end
            fill_eta = now + UNLOAD_ETA_S if in_flight else max(now, min(
                self.expose_t0.values(), default=now) + cycle)
            deadline = (ws[0].data.develop_end or 0) + cfg.q_develop_cure_s
            if fill_eta + cfg.margin_s + self.ctx.tools[oven].poll_s >= deadline:
                log.info("partial batch: queue-time pressure", recipe=name, wafers=len(ws),
                         deadline_in_s=round(deadline - self.clock.now()))
                return ws, recipe
        return None
