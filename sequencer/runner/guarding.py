"""A step, guarded: what happens to a tool and its wafers when a step ends badly.

A mixin of :class:`sequencer.runner.scheduler.Scheduler`, whose state it reads:

- a step that raises ``ToolHeld`` (a tool alarm a person must see) holds the tool
  (``sequencer.runner.tool_holds``) and its worker waits here until it is released;
- ``ToolDown`` goes to the scheduler's ``_on_tool_down`` (serve mode handles it, a run
  holds the tool's remaining work);
- any other error (a bug, a tool doing what no manual says) holds the step's wafers and
  the tool with the reason: never a traceback, and the other tools carry on;
- a make-safe that a kill interrupted is finished before the tool gets new work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog

from sequencer.runner.steps import ToolDown, ToolHeld
from sequencer.runner.steps.safety import resume_make_safe
from sequencer.runner.tool_holds import ToolHolds
from sequencer.states.substrate import Substrate

log = structlog.get_logger("viaform.scheduler")


class NoWork(Exception):  # noqa: N818 - a condition, not an error
    """A held tool in a run that no work can reach any more: its worker ends."""


class Stopping(Exception):  # noqa: N818 - a request, not an error
    """A graceful stop interrupts a step here: no command is in flight, the phase is
    journaled; the step resumes from there at the next start."""


class StepGuard:
    """See the module docstring."""

    # state kept by the Scheduler
    wafers: list[Substrate]
    holds: ToolHolds
    ctx: Any
    changed: asyncio.Event
    serve_mode: bool
    recovery: list[str]
    if TYPE_CHECKING:  # and the Scheduler's methods
        @property
        def exposure_done(self) -> bool: ...

        @property
        def oven_done(self) -> bool: ...

        def _on(self, w: Substrate, tool: str) -> bool: ...

        def _release(self, tool: str) -> None: ...

        def _on_tool_down(self, tool: str, exc: ToolDown,
                          wafers: Iterable[Substrate]) -> bool: ...

        def _hold(self, wafers: Iterable[Substrate], reason: str) -> None: ...

        def _check_stop(self) -> None: ...

        def _next_exposure(self, name: str) -> Substrate | None: ...

        def _next_etch(self, name: str | None = None) -> Substrate | None: ...

        def _waiting_for_cure(self) -> list[Substrate]: ...

    async def _guarded(self, tool: str, wafers: list[Substrate], run: Callable[[], Any],
                       default: Any) -> Any:
        """Run one step on ``tool`` (``busy`` already names it; released here). A held tool
        waits here for a person; an error no rule expected holds the step's wafers and the
        tool, with the reason: never a traceback, and the other tools carry on."""
        held: ToolHeld | None = None
        result = default
        try:
            result = await run()
        except ToolHeld as exc:
            held = exc
        except ToolDown as exc:
            if not self._on_tool_down(tool, exc, wafers):
                raise
        except (Stopping, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("step failed unexpectedly", tool=tool)
            why = f"{tool}: {type(exc).__name__}: {exc}"
            self._hold([w for w in wafers if not w.final],
                       f"held for disposition: the step on the {why}")
            held = ToolHeld(tool, ("STEP_FAILED",), f"the step on the {why}")
        finally:
            self._release(tool)
        if held is not None:
            await self._held(tool, held, wafers)
        return result

    async def _held(self, tool: str, exc: ToolHeld, wafers: Iterable[Substrate] = ()) -> None:
        """Hold ``tool`` for a person (one alarm) and wait until it is released."""
        ws = list(wafers)
        self.holds.hold(tool, exc.alarms, exc.reason, lot_id=ws[0].lot_id if ws else None,
                        wafer_ids=[w.wafer_id for w in ws])
        self.changed.set()
        try:
            await self.holds.wait_release(tool, lambda: self._check_held(tool))
        except NoWork:
            log.warning("run ends with the tool still held: no work left for it", tool=tool)
        self.changed.set()

    def _check_held(self, tool: str) -> None:
        """While ``tool`` is held: a stop ends the wait; so, in a run (not serving), does
        having no work left that could ever reach the tool (the hold stays journaled)."""
        self._check_stop()
        if self.serve_mode:
            return
        kind = self.ctx.kind(tool)
        step = {"exposure": "expose", "oven": "cure", "etcher": "etch"}[kind]
        if any(w.data.step == step and self._on(w, tool) and not w.final for w in self.wafers):
            return  # a step begun on the tool waits for it
        left = {"exposure": lambda: self._next_exposure(tool) is not None,
                "oven": lambda: bool(self._waiting_for_cure()) or not self.exposure_done,
                "etcher": lambda: self._next_etch(tool) is not None or not self.oven_done}
        if not left[kind]():
            raise NoWork(tool)

    async def _resume_safe(self, tool: str) -> None:
        """Finish any make-safe on ``tool`` that a kill interrupted, before new work."""
        try:
            self.recovery += await resume_make_safe(self.ctx, tool,
                                                    {w.wafer_id: w for w in self.wafers})
        except ToolHeld as exc:
            await self._held(tool, exc)
