"""What the steps share: configuration, a handle per tool, the step context, waiting.

Steps (``expose``, ``cure``, ``etch``) are plain coroutines over the driver
protocols. They observe completion from the tools' own states (polling every
``poll_s`` tool seconds) and every wait has a limit derived from the manual's
durations (× ``limit_factor`` + ``margin_s``) on the scaled clock.

A step advances a wafer through named phases and journals the last one done
(``WaferData.phase``), so after a crash a step resumes where it stood; see
:func:`due` / :meth:`StepContext.mark`.

A tool call names the driver's bound method (see :class:`ToolHandle`). The package
imports one way: this module (shared) ← ``reconcile`` ← ``start`` ← ``safety``,
``checks`` ← the steps; ``sequencer.runner.recovery`` (the restart) imports them, never the
reverse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, cast

import structlog

from drivers.errors import CommsError, ToolError
from sequencer.runner.alarms import Alarms, Event, EventSink
from sequencer.runner.clock import SeqClock
from sequencer.runner.protocols import (
    EtcherProto,
    ExposureProto,
    Location,
    MaterialHandling,
    OvenProto,
    ScpiJobTool,
    ToolDriver,
    state_name,
)
from sequencer.runner.steps.polling import next_poll_s
from sequencer.runner.toolworker import ToolWorker
from sequencer.states.substrate import Substrate
from sequencer.store.journal import Journal

log = structlog.get_logger("viaform.sequencer")

P = ParamSpec("P")
T = TypeVar("T")
V = TypeVar("V")
#: the driver a handle holds; covariant: a ToolHandle[ExposureProto] is a
#: ToolHandle[ScpiJobTool] wherever only the shared part is called
D = TypeVar("D", bound=ToolDriver, covariant=True)


class StepFailed(Exception):
    """The step could not finish this wafer (or batch). ``fate`` is ``abort`` (the
    irreversible process began), ``hold`` (held for disposition) or ``reject``."""

    def __init__(self, fate: str, reason: str) -> None:
        super().__init__(reason)
        self.fate = fate
        self.reason = reason


class ToolDown(Exception):
    """A tool stayed unreachable (or in alarm) past its bounded wait."""

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(f"{tool}: {reason}")
        self.tool = tool
        self.reason = reason


class ToolHeld(ToolDown):
    """The tool reports an alarm a person must see (``sequencer.runner.tool_alarms``: safety or
    process class). The step has already settled its wafers (aborted, held, or not yet
    touched, to resume later); the scheduler holds the tool — no new work, an alarm in
    viaform's list — until a person acknowledges that alarm, and only then sends the
    tool's own clear / ACK ALARMS."""

    def __init__(self, tool: str, alarms: tuple[str, ...], reason: str) -> None:
        super().__init__(tool, reason)
        self.alarms = tuple(alarms)


class ToolAlarm(Exception):
    """The tool went to ALARM / ABORTED while we waited for it."""

    def __init__(self, tool: str, state: str, alarms: tuple[str, ...] = ()) -> None:
        super().__init__(f"{tool} in {state} ({', '.join(alarms) or 'no alarm named'})")
        self.tool = tool
        self.state = state
        self.alarms = alarms


class WaitTimeout(Exception):
    """A wait passed its limit (manual duration × factor + margin)."""


#: each kind's poll period (tool s) where tools.yaml gives none
POLL_DEFAULT = {"exposure": 0.5, "etcher": 0.5, "oven": 5.0}


@dataclass
class SequencerConfig:
    """Scheduling knobs. Durations in tool seconds unless named ``_wall``."""

    poll_s: dict[str, float] = field(
        default_factory=lambda: {"exposure": 0.5, "etcher": 0.5, "oven": 5.0})
    q_develop_cure_s: float = 24 * 3600.0
    q_cure_etch_s: float = 72 * 3600.0
    limit_factor: float = 1.5
    margin_s: float = 30.0
    tool_down_s: float = 600.0  # how long a tool may stay in alarm / busy before its work is held
    reconnect_attempts: int = 5
    reconnect_backoff_wall: float = 0.5  # first back-off, doubling, wall seconds
    reconnect_backoff_max_wall: float = 5.0
    expose_cycle_s: float = 155.0  # estimate for the oven's fill decision (PROCESS.md)
    #: the oven's chamber gas volume (est.): the purge c(t) = c0·e^(−Q·t/V) of PROCESS.md
    oven_volume_l: float = 80.0
    oven_tau_s: float = 900.0  # chamber time constant (PROCESS.md, est.)
    ambient_c: float = 25.0
    band_c: float = 3.0  # "at temperature" = within ±3 °C of the final target
    #: the most wafers a batch takes, whatever its cure recipe says (the oven's cassette
    #: holds 25): lowered live (GEM EC MaxBatchSize) to cure smaller batches
    max_batch: int = 25

    #: wall seconds every wait allows on top of its tool-time limit: at high time
    #: scales a few ms of host jitter are minutes of tool time, and must never be
    #: taken for a hung tool (at time scale 1 it is a second on a minutes-long step)
    min_wall_margin_s: float = 1.0
    #: tool s per wall s (tools.yaml's ``time_scale``): the planner scales by it the
    #: sequencer's own wall time in a step, ``step_overhead_wall_s``
    time_scale: float = 1.0
    #: the sequencer's own wall time in a one-wafer step, between and around its waits
    #: (round trips, journal syncs, moves): 24 ms, 2 cores, simulators at time scale 2000,
    #: the figure that centres the planner's error on 1-1-1 and 1-1-2 (4 and 10 lots:
    #: +0.56, +0.01, -0.14, -0.80 %; bench_lines prints it). 28 ms before the steps'
    #: exchanges were trimmed (2026-12-01). Nothing at time scale 1; ~48 tool s at 2000
    step_overhead_wall_s: float = 0.024

    def limit(self, expected_s: float) -> float:
        return expected_s * self.limit_factor + self.margin_s

    def batch_size(self, recipe_batch_size: int) -> int:
        """A batch's size: the cure recipe's, capped by ``max_batch``."""
        return max(1, min(int(recipe_batch_size), int(self.max_batch)))

    @classmethod
    def from_tools(cls, tools: Any, **overrides: Any) -> SequencerConfig:
        """From a ``sequencer.line.config.ToolsConfig``: each tool's ``poll_s`` (its kind's
        default where the entry has none) and the line's time scale."""
        kinds = {**{k: k for k in POLL_DEFAULT}, **tools.kinds}
        poll = {t: float(tools.entries.get(t, {}).get("poll_s", POLL_DEFAULT.get(k, 1.0)))
                for t, k in kinds.items()}
        return cls(**{"poll_s": poll, "time_scale": float(tools.time_scale), **overrides})


class ToolHandle(Generic[D]):
    """One tool: its driver, its worker thread, its comms status (OK / UNKNOWN / DOWN).

    A call names the driver's own method, bound: ``await h.q(h.driver.set, "dose", v)``.
    ``h.driver`` is typed by the tool's Protocol (``ctx.exposure(name)`` is a
    ``ToolHandle[ExposureProto]``), and ``q``/``cmd`` take ``Callable[P, T]`` with
    ``*args: P.args``, so a reader (go to definition) and mypy follow the value from the
    recipe to the driver method that writes it, and the result comes back typed ``T``.
    That shape, rather than a typed async proxy per Protocol, keeps the one place where
    a call is queued on the tool's worker, journaled around and retried (here), and it
    needs no second copy of each Protocol to keep in step with the drivers.

    ``q`` runs a query or an idempotent setting: on a CommsError the tool is
    recovered (reconnect with bounded back-off, then a full read-back) and the
    call repeated. ``cmd`` runs a command once and lets CommsError through: the
    caller must reconcile before deciding anything (starts are never retried blind).
    """

    def __init__(self, name: str, driver: D, ctx: StepContext, kind: str | None = None) -> None:
        self.name = name
        self.kind = kind or name  # exposure | oven | etcher: what the tool is
        self.driver = driver
        self.ctx = ctx
        self.worker = ToolWorker(name)
        self.comms = "OK"
        self.current_lot: str | None = None
        self.busy_s = 0.0
        self.boot: Any = None  # SYSTem:BOOT? as last read before a journaled command
        self.on_comms: list[Callable[[ToolHandle[Any], str], None]] = []

    @property
    def poll_s(self) -> float:
        return self.ctx.config.poll_s.get(self.name, POLL_DEFAULT.get(self.kind, 1.0))

    async def cmd(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.comms == "DOWN":
            raise ToolDown(self.name, "unreachable")
        return await self.worker.call(fn, *args, **kwargs)

    async def q(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        while True:
            try:
                return await self.cmd(fn, *args, **kwargs)
            except CommsError as exc:
                await self.recover(f"{called(fn)}: {exc}")

    async def recover(self, why: str) -> dict[str, Any]:
        """UNKNOWN → alarm → reconnect (bounded back-off) → read the tool's full state and
        its job record / batch number before any command. Raises ToolDown when it fails."""
        cfg = self.ctx.config
        self._set_comms("UNKNOWN")
        self.ctx.alarms.raise_(self.name, "COMMS_LOST", why, lot_id=self.current_lot)
        delay = cfg.reconnect_backoff_wall
        last: Exception | None = None
        for _ in range(cfg.reconnect_attempts):
            await asyncio.sleep(delay)
            delay = min(delay * 2, cfg.reconnect_backoff_max_wall)
            try:
                await self.worker.call(self._reconnect)
                readback = {"status": repr(await self.worker.call(self.driver.status))}
                readback.update(await self._job_record())
            except CommsError as exc:
                last = exc
                continue
            self.ctx.journal.trace(self.name, "readback", readback)
            log.info("tool read back after comms loss", tool=self.name, **readback)
            self._set_comms("OK")
            return readback
        self._set_comms("DOWN")
        raise ToolDown(self.name, f"no comms after {cfg.reconnect_attempts} attempts ({last})")

    async def _job_record(self) -> dict[str, str]:
        """The oven's batch number, or a SCPI tool's last job, as read back after a loss."""
        if self.kind == "oven":
            oven = cast(OvenProto, self.driver)
            return {"batch_no": repr(await self.worker.call(oven.batch_no))}
        scpi = cast(ScpiJobTool, self.driver)
        return {"last_job": repr(await self.worker.call(scpi.last_job))}

    def _reconnect(self) -> None:
        try:
            self.driver.close()
        except ToolError:
            pass
        self.driver.connect()

    def _set_comms(self, state: str) -> None:
        self.comms = state
        self.ctx.emit(Event("tool", self.ctx.clock.now(), tool=self.name,
                            lot_id=self.current_lot, data={"comms": state}))
        for fn in self.on_comms:
            fn(self, state)

    async def state(self) -> str:
        """The tool's state by name (``state_name`` of the driver's ``state()``)."""
        return state_name(await self.q(self.driver.state))

    async def wait(self, poll: Callable[[], V], done: Iterable[str], expected_s: float,
                   what: str, *, read: Callable[[V], str] | None = None,
                   fail: Iterable[str] = ("ALARM",),
                   on_poll: Callable[[V], None] | None = None, sparse: bool = True,
                   just_started: bool = False) -> V:
        """Poll ``poll`` (a driver method, through ``q``) until its state is in ``done``;
        ToolAlarm on ``fail``, WaitTimeout after ``limit(expected_s)``. Returns the last
        reading. ``read`` names the state of a reading (default: ``state_name``). Polls
        follow the expected end (``steps/polling.py``); ``sparse`` False: every period
        while the end is far (each poll is a record, as a cure's profile).

        ``just_started``: the step's command was sent a moment ago (not a resumed wait),
        so a reading now could only say busy: the first poll comes when the schedule's
        second would (an alarm is still seen within the sparse spacing). A resumed wait
        polls at once: the step may have ended while nobody watched."""
        done, fail = set(done), set(fail)
        clock, cfg = self.ctx.clock, self.ctx.config
        began = clock.now()
        deadline = (clock.now() + cfg.limit(expected_s)
                    + cfg.min_wall_margin_s * clock.time_scale)
        if just_started:
            await clock.sleep(next_poll_s(self.poll_s, 0.0, expected_s, sparse=sparse))
        while True:
            polled_at = clock.now()  # a timeout needs a reading taken after the deadline
            value = await self.q(poll)
            if on_poll is not None:
                on_poll(value)
            st = read(value) if read else state_name(value)
            if st in done:
                return value
            if st in fail:
                alarms = tuple(await self.q(self.driver.alarms))
                raise ToolAlarm(self.name, st, alarms)
            if polled_at > deadline:
                raise WaitTimeout(f"{self.name}: {what}: still {st} after "
                                  f"{cfg.limit(expected_s):.0f} s")
            await clock.sleep(next_poll_s(self.poll_s, clock.now() - began, expected_s,
                                          sparse=sparse))

    def close(self) -> None:
        self.worker.close()

    async def disconnect(self) -> None:
        """Close the tool's connection (on its worker, after any call in flight), then the
        worker. A run that ends holds no connection: a tool takes only a few at once."""
        try:
            await self.worker.call(self.driver.close)
        except Exception:  # closing a broken link must not keep the others open
            log.warning("closing the tool's connection failed", tool=self.name, exc_info=True)
        self.close()


def called(fn: Callable[..., Any]) -> str:
    """The driver method's name (through a ``functools.partial`` too), for messages and the
    serve-mode status note: ``status`` for ``h.driver.status``."""
    inner = getattr(fn, "func", fn)
    return str(getattr(inner, "__name__", None) or repr(fn))


@dataclass
class StepContext:
    """What a step needs besides its wafer and recipe."""

    journal: Journal
    alarms: Alarms
    clock: SeqClock
    config: SequencerConfig
    handling: MaterialHandling
    emit: EventSink
    tools: dict[str, ToolHandle[Any]] = field(default_factory=dict)
    make_program: Any = None

    # a tool's handle by name, typed by its kind's Protocol (``tools`` holds them all)
    def exposure(self, name: str = "exposure") -> ToolHandle[ExposureProto]:
        return self.tools[name]

    def etcher(self, name: str = "etcher") -> ToolHandle[EtcherProto]:
        return self.tools[name]

    def oven(self, name: str = "oven") -> ToolHandle[OvenProto]:
        return self.tools[name]

    def of_kind(self, kind: str) -> list[str]:
        """The names of the tools of ``kind``, in the line's order."""
        return [n for n, h in self.tools.items() if h.kind == kind]

    def kind(self, tool: str) -> str:
        """The kind of ``tool`` (a name no handle has: the name itself)."""
        h = self.tools.get(tool)
        return h.kind if h is not None else tool

    def save(self, w: Substrate) -> None:
        self.journal.save_wafer(w.wafer_id, w.state, w.data_dict())

    def _one_commit(self, wafers: list[Substrate]) -> AbstractContextManager[None]:
        """One transaction for the saves of several wafers (a batch: one commit, not 25);
        a single wafer's save commits alone."""
        return self.journal.atomic() if len(wafers) > 1 else nullcontext()

    def mark(self, wafers: list[Substrate], phase: str) -> None:
        """Journal ``phase`` as the last one done for each wafer (one transaction)."""
        with self._one_commit(wafers):
            for w in wafers:
                w.data.phase = phase
                self.save(w)

    async def move(self, wafers: list[Substrate], to: Location, *,
                   phase: str | None = None) -> None:
        """Move ``wafers`` to ``to`` under a journaled INTENT/OUTCOME. The OUTCOME, each
        wafer's new location and ``phase`` (when given: the step's phase the move
        completes) are one transaction, so a restart sees all of them or an open intent
        (which it re-issues: a move to where the wafers are is a no-op). Wafers already
        at ``to`` (a resumed step) are only marked."""
        ids = [w.wafer_id for w in wafers]
        if all(w.data.location == to for w in wafers):
            if phase is not None:
                self.mark(wafers, phase)
            return
        iid = self.journal.intent("handling", "MOVE", wafer_ids=ids,
                                  lot_id=wafers[0].lot_id, args={"to": to})
        try:
            await self.handling.move(ids, to)
        except Exception as exc:
            self.journal.outcome(iid, "FAILED", str(exc))
            raise StepFailed("hold", f"held for disposition: move to {to} failed: {exc}") \
                from exc
        with self.journal.atomic():
            self.journal.outcome(iid, "OK")
            for w in wafers:
                w.data.location = to
                if phase is not None:
                    w.data.phase = phase
                self.save(w)

    def begin(self, wafers: list[Substrate], step: str, tool: str) -> None:
        """The step begins (or resumes) on ``tool``: journaled on each wafer (``data.tool``;
        ``data.ran[step]`` keeps which tool ran each step)."""
        with self._one_commit(wafers):
            for w in wafers:
                if w.state == "NEEDS_PROCESSING":
                    w.start()
                if w.data.step != step or w.data.tool != tool:
                    w.data.step, w.data.phase = step, "" if w.data.step != step else w.data.phase
                    w.data.tool = tool
                    w.data.ran = {**w.data.ran, step: tool}
                    self.save(w)
                self.emit(Event("step_start", self.clock.now(), lot_id=w.lot_id,
                                wafer_id=w.wafer_id, tool=tool, step=step))

    def end(self, wafers: list[Substrate], step: str, tool: str, ok: bool) -> None:
        with self._one_commit(wafers):
            for w in wafers:
                w.data.step, w.data.phase, w.data.tool = "", "", ""
                self.save(w)
                self.emit(Event("step_end", self.clock.now(), lot_id=w.lot_id,
                                wafer_id=w.wafer_id, tool=tool, step=step, data={"ok": ok}))


def due(w: Substrate, phase: str, order: tuple[str, ...]) -> bool:
    """True if ``phase`` (of a step whose phases are ``order``) is still to be done."""
    return order.index(w.data.phase or "") < order.index(phase)


def apply_fate(w: Substrate, fate: str, reason: str) -> None:
    """Put a wafer in its final state for a failed step (if it is not final already)."""
    if w.final:
        return
    if fate == "abort" and w.state == "IN_PROCESS":
        w.abort(reason=reason)
    elif fate == "reject" and w.state == "IN_PROCESS":
        w.reject(reason=reason)
    else:
        w.hold(reason=reason)


def bind(**kv: Any) -> Any:
    """structlog context for a step (lot_id, wafer_id, tool, step)."""
    return structlog.contextvars.bound_contextvars(**kv)
