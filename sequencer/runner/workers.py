"""The workers of the three kinds of tool: one coroutine per tool, each taking the next
step of its kind that no other tool has claimed.

- An exposure cell resumes the wafer whose exposure it had begun, else takes the next
  wafer in lot order (through the exposure gate of ``batching``).
- An oven resumes its batches, else starts the batch ``batching`` picks for it.
- An etcher resumes its wafer, else takes the cured wafer that came out first.

A claim (``Scheduler._claim``) is checked and made with no await in between, so two tools
of a kind never take the same wafer. A tool that goes down leaves the work of its kind
to the others; when every tool of a kind is down, what is left for that kind is held.
A mixin of :class:`sequencer.runner.scheduler.Scheduler`, whose state it reads.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from sequencer.runner import policy
from sequencer.runner.alarms import Event
from sequencer.runner.guarding import Stopping
from sequencer.runner.steps import StepContext, ToolDown, ToolHeld
from sequencer.runner.steps.cure import cure_batch, expected_cure_s
from sequencer.runner.steps.etch import etch_wafer
from sequencer.runner.steps.expose import expose_wafer
from sequencer.states.substrate import Substrate

IDLE_WALL_S = 0.5  # serve mode: longest wait for new work without a wake-up (wall s)
#: an idle oven looks again at least this often (tool s) when only an event can give it
#: work: every change that can (a wafer developed, a hold released) wakes it at once
IDLE_TOOL_S = 600.0
#: the tool whose worker (or poller) runs the current task: where a stop may interrupt
CURRENT_TOOL: contextvars.ContextVar[str | None] = contextvars.ContextVar("viaform_tool",
                                                                         default=None)


@dataclass(frozen=True)
class Busy:
    """The job step running on a tool."""

    step: str
    wafers: tuple[Substrate, ...]


class KindWorkers:
    """See the module docstring."""

    # state kept by the Scheduler
    ctx: StepContext
    clock: Any
    wafers: list[Substrate]
    flows: dict[str, Any]
    down: dict[str, str]
    ended: set[str]
    cycle: list[float]
    batches: list[tuple[int | None, list[str]]]
    expose_t0: dict[str, float]
    oven_busy: dict[str, tuple[float, float]]
    busy: dict[str, Busy]
    serve_mode: bool
    changed: Any
    if TYPE_CHECKING:  # and the Scheduler's methods
        @property
        def exposure_done(self) -> bool: ...

        @property
        def oven_done(self) -> bool: ...

        def _kind_down(self, kind: str) -> str | None: ...

        def _on(self, w: Substrate, tool: str) -> bool: ...

        def _taken(self, w: Substrate) -> bool: ...

        def _may_run(self, w: Substrate) -> bool: ...

        def _hold(self, wafers: Iterable[Substrate], reason: str) -> None: ...

        def _on_tool_down(self, tool: str, exc: ToolDown,
                          wafers: Iterable[Substrate]) -> bool: ...

        async def _work(self, pick: Callable[[], Any], done: Callable[[], bool],
                        wall_s: float) -> Any: ...

        async def _idle(self, wall_s: float) -> None: ...

        async def _claim(self, tool: str, wafers: Iterable[Substrate], step: str) -> bool: ...

        async def _gate(self) -> None: ...

        async def _resume_safe(self, tool: str) -> None: ...

        async def _guarded(self, tool: str, wafers: list[Substrate], run: Callable[[], Any],
                           default: Any) -> Any: ...

        def _pick_batch(self, oven: str) -> tuple[list[Substrate], Any] | float | None: ...

        def _waiting_for_cure(self) -> list[Substrate]: ...

        def _line_state(self) -> policy.LineState: ...

        def _emit(self, event: Event) -> None: ...

    async def _exposure_worker(self, name: str) -> None:
        CURRENT_TOOL.set(name)
        try:
            await self._resume_safe(name)
            while (w := await self._work(partial(self._next_exposure, name), lambda: True,
                                         IDLE_WALL_S)) is not None:
                if why := self._kind_down("oven"):
                    self._hold([w], f"held for disposition: not exposed, oven down: {why}")
                    continue
                await self._gate()
                if not await self._claim(name, [w], "expose"):
                    continue
                t0 = self.expose_t0[name] = self.clock.now()
                ok = await self._guarded(name, [w], partial(
                    expose_wafer, self.ctx, self.ctx.exposure(name), w,
                    self.flows[w.lot_id].exposure), False)
                self.expose_t0.pop(name, None)
                self.ctx.tools[name].busy_s += self.clock.now() - t0
                if ok:
                    self.cycle.append(self.clock.now() - t0)
                self.changed.set()
        except ToolDown as exc:
            self.down[name] = exc.reason
            if why := self._kind_down("exposure"):
                self._hold([w for w in self.wafers if not w.final and not w.data.developed],
                           f"held for disposition: exposure down: {why}")
            else:  # the other cells take the rest; the wafer begun here is held
                self._hold([w for w in self.wafers if not w.final and w.data.step == "expose"
                            and self._on(w, name)],
                           f"held for disposition: {name} down: {exc.reason}")
        except Stopping:
            pass
        finally:
            self.expose_t0.pop(name, None)
            self.ended.add(name)
            self.changed.set()

    def _next_exposure(self, name: str) -> Substrate | None:
        """The wafer whose exposure resumes on ``name``, else the next one to expose."""
        return self._wafer(policy.next_exposure(self._line_state(), name))

    def _wafer(self, wafer_id: str | None) -> Substrate | None:
        return None if wafer_id is None else next(w for w in self.wafers
                                                  if w.wafer_id == wafer_id)

    async def _oven_worker(self, name: str) -> None:
        CURRENT_TOOL.set(name)
        try:
            await self._resume_cures(name)
            while True:
                if not self.serve_mode and not self._waiting_for_cure() and self.exposure_done:
                    return
                picked = self._pick_batch(name)
                if picked is None or isinstance(picked, float):  # an event, or the due time
                    wake = IDLE_TOOL_S if picked is None else picked - self.clock.now()
                    await self._idle(self.clock.to_wall(
                        max(self.ctx.tools[name].poll_s, min(wake, IDLE_TOOL_S))))
                    continue
                if await self._claim(name, picked[0], "cure"):
                    await self._cure(name, *picked)
        except ToolDown as exc:
            self.down[name] = exc.reason
            if why := self._kind_down("oven"):
                self._hold([w for w in self.wafers if not w.final and w.data.developed
                            and not w.data.cured], f"held for disposition: oven down: {why}")
            else:
                self._hold([w for w in self.wafers if not w.final and w.data.step == "cure"
                            and self._on(w, name)],
                           f"held for disposition: {name} down: {exc.reason}")
        except Stopping:
            pass
        finally:
            self.ended.add(name)
            self.changed.set()

    async def _resume_cures(self, name: str) -> None:
        groups: dict[int | None, list[Substrate]] = {}
        for w in self.wafers:
            if not w.final and w.data.step == "cure" and self._on(w, name):
                groups.setdefault(w.data.cure_batch, []).append(w)
        for ws in groups.values():
            self.busy[name] = Busy("cure", tuple(ws))
            await self._cure(name, ws, self.flows[ws[0].lot_id].cure)

    async def _cure(self, name: str, ws: list[Substrate], recipe: Any) -> None:
        """One batch on the oven ``name``, which ``busy`` already names; released at the end."""
        t0 = self.clock.now()
        self.oven_busy[name] = (t0, expected_cure_s(recipe, self.ctx.config))
        try:
            done = await self._guarded(name, ws, lambda: cure_batch(
                self.ctx, self.ctx.oven(name), ws, recipe), [])
        finally:
            self.oven_busy.pop(name, None)
        for w in ws:  # held before any went in (the oven was held): back to waiting
            if not w.final and w.data.step == "cure" and not w.data.phase:
                w.data.step = w.data.tool = ""
                self.ctx.save(w)
        self.ctx.tools[name].busy_s += self.clock.now() - t0
        self.batches.append((ws[0].data.cure_batch, [w.wafer_id for w in ws]))
        self._emit(Event("batch", self.clock.now(), tool=name,
                         data={"batch_no": ws[0].data.cure_batch,
                               "wafers": [w.wafer_id for w in ws],
                               "cured": [w.wafer_id for w in done]}))

    def _next_etch(self, name: str | None = None) -> Substrate | None:
        """The wafer whose etch resumes on ``name``, else the next cured one (first out of
        the oven first); ``name`` None: any etcher's."""
        return self._wafer(policy.next_etch(self._line_state(), name))

    async def _etch_worker(self, name: str) -> None:
        CURRENT_TOOL.set(name)
        # new etch work comes with an event (a batch ends, a hold is released): the wait
        # for it is bounded only as a safety net
        idle = max(self.clock.to_wall(self.ctx.tools[name].poll_s), IDLE_WALL_S)
        try:
            try:
                await self._resume_safe(name)
            except ToolDown as exc:  # its wafer stays recorded on it; its work is held
                if not self._on_tool_down(name, exc, []):
                    self.down[name] = exc.reason
            while (w := await self._work(partial(self._next_etch, name),
                                         lambda: self.oven_done, idle)) is not None:
                if name in self.down:
                    if not (why := self._kind_down("etcher")):
                        return  # the other etchers take the work
                    self._hold([w], f"held for disposition: etcher down: {why}")
                    continue
                if await self._claim(name, [w], "etch"):
                    await self._guarded(name, [w], partial(self._etch, name, w), None)
        except Stopping:
            pass
        finally:
            self.ended.add(name)
            self.changed.set()

    async def _etch(self, name: str, w: Substrate) -> None:
        if w.final:
            return
        t0 = self.clock.now()
        try:
            await etch_wafer(self.ctx, self.ctx.etcher(name), w, self.flows[w.lot_id].etch)
        except ToolHeld:
            raise
        except ToolDown as exc:
            if not self._on_tool_down(name, exc, [w]):
                self.down[name] = exc.reason
                self._hold([w], f"held for disposition: {name} down: {exc.reason}")
        finally:
            self.ctx.tools[name].busy_s += self.clock.now() - t0

    def _workers(self) -> list[tuple[Callable[[], Any], str]]:
        """One worker per tool, by its kind: (the coroutine function, the tool)."""
        by_kind = {"exposure": self._exposure_worker, "oven": self._oven_worker,
                   "etcher": self._etch_worker}
        return [(partial(by_kind[h.kind], name), name) for name, h in self.ctx.tools.items()]

