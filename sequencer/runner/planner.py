"""The planner: the scheduling policy on a virtual clock, each tool replaced by a model.

:func:`plan` runs ``sequencer.runner.policy`` — the very functions the runner calls —
from event to event: a free tool asks the policy for its next step, the step's model
says when it ends, and the clock jumps to the next event. Nothing is sent anywhere.

The models are the manuals' nominal figures, the same tables the steps' waits are
built from (``steps.expose.TIMING``, ``steps.etch.TIMING``, ``steps.cure.expected_cure_s``):
a real line has no simulator to ask, and the simulators themselves draw their
durations around these figures (±10 %). The planner does not import the simulators
(the import rules keep them out of the sequencer; see docs/sequencer.md, "The planner").

:class:`Decision` records each step started, in order: the runner records the same
(``Scheduler.decisions``), so a test compares the two sequences.

Modelled beside the manuals' figures: the sequencer's own wall time in a one-wafer
step (``SequencerConfig.step_overhead_wall_s``, times the time scale: only a high time
scale makes it visible) and an oven's next batch starting from the chamber as its last
batch left it. Not modelled: the time a poll takes to see a step's end (polling is
dense around the expected end: ``steps/polling.py``), handling moves (instant on the
simulators), the tools' ±10 % spread.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sequencer.process.recipes import Flow, Lot
from sequencer.runner import policy
from sequencer.runner.policy import Decision
from sequencer.runner.steps import SequencerConfig
from sequencer.runner.steps.cure import expected_cure_s
from sequencer.runner.steps.etch import TIMING as ETCH_TIMING
from sequencer.runner.steps.expose import TIMING as EXPOSE_TIMING

INTENSITY_MW_CM2 = 1000.0  # the LX-365's lamp when new (the manual's nominal)


@dataclass(frozen=True)
class StepRow:
    wafer_id: str
    lot_id: str
    step: str
    tool: str
    start: float
    end: float


@dataclass
class Plan:
    """What :func:`plan` predicts. Times in tool seconds from the plan's ``t0``."""

    t0: float
    makespan_s: float
    lot_end: dict[str, float]
    steps: list[StepRow]
    utilisation: dict[str, float]
    decisions: list[Decision]

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON (``viaform plan --json``, the daemon's ``/plan``): times in
        tool seconds from its start."""
        return {"makespan_s": round(self.makespan_s, 1),
                "lots": {k: round(v, 1) for k, v in self.lot_end.items()},
                "utilisation": {k: round(v, 4) for k, v in self.utilisation.items()},
                "steps": [{"wafer_id": r.wafer_id, "lot_id": r.lot_id, "step": r.step,
                           "tool": r.tool, "start_s": round(r.start, 1),
                           "end_s": round(r.end, 1)} for r in self.steps]}


def overhead_s(cfg: SequencerConfig) -> float:
    """The sequencer's own time in a one-wafer step, tool s (its wall time × time scale)."""
    return cfg.step_overhead_wall_s * cfg.time_scale


def expose_s(flow: Flow, cfg: SequencerConfig) -> tuple[float, float]:
    """(the whole exposure step, its develop end from the step's start), tool s: load,
    fields × (dose / intensity + stepping), develop, measure, then the unload; and the
    sequencer's own time (three quarters of it before the develop ends)."""
    t = EXPOSE_TIMING
    developed = (t["load_s"] + t["fields"] * (flow.exposure.dose_mj_cm2 / INTENSITY_MW_CM2
                                              + t["step_s"])
                 + flow.exposure.develop_s + t["measure_s"])
    extra = overhead_s(cfg)
    return developed + t["unload_s"] + extra, developed + 0.75 * extra


def etch_s(flow: Flow, cfg: SequencerConfig) -> float:
    """Load + pump-down, stabilise, the expected main etch with its overetch, vent, and
    the sequencer's own time."""
    t = ETCH_TIMING
    main = flow.main_etch_s() * (1 + flow.etch.overetch_pct / 100.0)
    return t["load_s"] + t["stabilize_s"] + main + t["vent_s"] + overhead_s(cfg)


@dataclass
class PlanWafer:
    """A wafer as the planner tracks it (``held``: out of the plan: held, or final)."""

    wafer_id: str
    lot_id: str
    flow: Flow
    developed: bool = False
    cured: bool = False
    etched: bool = False
    step: str = ""
    tool: str = ""
    develop_end: float | None = None
    cure_end: float | None = None
    held: bool = False  # the policy found it past its queue time: out of the plan

    def view(self) -> policy.Wafer:
        return policy.Wafer(self.wafer_id, self.flow.cure.name, self.developed, self.cured,
                            self.etched, self.step, self.tool, self.develop_end,
                            self.cure_end, not (self.etched or self.held), True,
                            bool(self.step))


@dataclass
class _Line:
    kinds: dict[str, str]
    config: SequencerConfig
    wafers: list[PlanWafer]
    now: float = 0.0
    busy: dict[str, float] = field(default_factory=dict)  # tool → when its step ends
    since: dict[str, float] = field(default_factory=dict)  # tool → when its step began
    cure_expected: dict[str, float] = field(default_factory=dict)  # oven → expected s
    #: oven → (when its last batch ended, the unload temperature it ended at)
    oven_left: dict[str, tuple[float, float]] = field(default_factory=dict)
    cycles: list[float] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    rows: list[StepRow] = field(default_factory=list)
    busy_s: dict[str, float] = field(default_factory=dict)

    families: dict[str, policy.Family] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for w in self.wafers:
            cure = w.flow.cure
            if cure.name not in self.families:
                self.families[cure.name] = policy.Family(
                    cure.name, self.config.batch_size(cure.batch_size),
                    expected_cure_s(cure, self.config))

    def state(self) -> policy.LineState:
        """The line now; a wafer done (or held) is left out: the policy ignores it."""
        cfg = self.config
        families = self.families
        ovens = tuple(self.since[t] + self.cure_expected[t] if t in self.busy else self.now
                      for t, k in self.kinds.items() if k == "oven")
        exposing = tuple(self.since[t] for t, k in self.kinds.items()
                         if k == "exposure" and t in self.busy)
        cycle = sum(self.cycles) / len(self.cycles) if self.cycles else cfg.expose_cycle_s
        polls = [cfg.poll_s.get(t, 5.0) for t, k in self.kinds.items() if k == "oven"]
        return policy.LineState(
            now=self.now, wafers=tuple(w.view() for w in self.wafers
                                       if not (w.etched or w.held)), families=families,
            cycle_s=cycle, q_develop_cure_s=cfg.q_develop_cure_s, margin_s=cfg.margin_s,
            oven_poll_s=max(polls, default=0.0), oven_free=ovens, exposures_since=exposing,
            exposure_open=bool(exposing) or any(not w.developed for w in self.wafers))


Batch = tuple[PlanWafer, ...]  # the wafers of one step


def plan(lots: Iterable[Lot], kinds: dict[str, str], config: SequencerConfig | None = None,
         *, t0: float = 0.0) -> Plan:
    """The plan of ``lots`` on a line of ``kinds`` (tool → kind), from an empty line."""
    cfg = config or SequencerConfig()
    wafers = [PlanWafer(x.wafer_id, lot.lot_id, lot.flow) for lot in lots for x in lot.wafers]
    line = _Line(dict(kinds), cfg, wafers, now=t0)
    _run(line)
    return _result(line, kinds, t0)


def _result(line: _Line, kinds: dict[str, str], t0: float) -> Plan:
    span = max((r.end for r in line.rows), default=t0) - t0
    lot_end: dict[str, float] = {}
    for r in line.rows:
        lot_end[r.lot_id] = max(lot_end.get(r.lot_id, 0.0), r.end - t0)
    return Plan(t0, span, lot_end, [replace(r, start=r.start - t0, end=r.end - t0)
                                    for r in line.rows],
                {t: (line.busy_s.get(t, 0.0) / span if span else 0.0) for t in kinds},
                [replace(d, t=d.t - t0) for d in line.decisions])


def _run(line: _Line, first: Iterable[tuple[float, str, str, tuple[PlanWafer, ...]]] = ()) -> None:
    """Event to event until no step is left or can start; ``first``: the ends of the steps
    under way when the plan starts, (t, what, tool, wafers)."""
    events: list[tuple[float, int, str, str, Batch]] = []  # (t, seq, what, tool, wafers)
    seq = 0
    for t, what, tool, ws in first:
        seq += 1
        heapq.heappush(events, (t, seq, what, tool, ws))
    index = {w.wafer_id: w for w in line.wafers}
    wake: float | None = None
    while True:
        wake = None
        started = True
        while started:  # each free tool decides, until none starts anything
            started = False
            s = line.state()
            for tool, kind in line.kinds.items():
                if tool in line.busy:
                    continue
                got = _decide(line, s, tool, kind, index)
                if got is None:
                    continue
                if isinstance(got, float):
                    wake = got if wake is None else min(wake, got)
                    continue
                dur, mid, ws = got
                seq += 1
                heapq.heappush(events, (line.now + dur, seq, "end", tool, ws))
                if mid is not None:
                    seq += 1
                    heapq.heappush(events, (line.now + mid, seq, "developed", tool, ws))
                started = True
                s = line.state()
        if not events:
            return
        t = events[0][0] if wake is None else min(events[0][0], wake)
        line.now = t
        while events and events[0][0] <= t:
            _, _, what, tool, ws = heapq.heappop(events)
            _finish(line, what, tool, ws)


def _decide(line: _Line, s: policy.LineState, tool: str, kind: str,
            index: dict[str, PlanWafer]) -> tuple[float, float | None, Batch] | float | None:
    """What the free ``tool`` starts now: (duration, develop offset, wafers), a time to
    look again (float), or None (nothing to do)."""
    if kind == "exposure":
        wid = policy.next_exposure(s, tool)
        if wid is None:
            return None
        wait = policy.exposure_wait(s)
        if wait > 0:
            return line.now + wait
        w = index[wid]
        dur, dev = expose_s(w.flow, line.config)
        _start(line, tool, "expose", (w,), dur)
        return dur, dev, (w,)
    if kind == "oven":
        poll = line.config.poll_s.get(tool, 5.0)
        decision = policy.pick_batch(s, poll)
        for wid in decision.late:  # held, never cured: out of the plan
            index[wid].held = True
        if decision.batch is None:  # as the runner's oven worker: at the due time
            return decision.wake_at
        ws = tuple(index[i] for i in decision.batch.wafer_ids)
        recipe = ws[0].flow.cure
        line.cure_expected[tool] = expected_cure_s(recipe, line.config)  # as the runner's
        cure = expected_cure_s(recipe, line.config, _chamber_c(line, tool))  # the model's
        _start(line, tool, "cure", ws, cure)
        return cure, None, ws
    wid = policy.next_etch(s, tool)
    if wid is None:
        return None
    w = index[wid]
    dur = etch_s(w.flow, line.config)
    _start(line, tool, "etch", (w,), dur)
    return dur, None, (w,)


def _chamber_c(line: _Line, oven: str) -> float | None:
    """The oven's chamber now: cooling toward ambient (its time constant) from the unload
    temperature its last batch ended at; None (ambient) before its first batch. The
    policy's estimate stays the cold one, as the runner's; this is the model's."""
    if oven not in line.oven_left:
        return None
    ended, unload_c = line.oven_left[oven]
    amb, tau = line.config.ambient_c, line.config.oven_tau_s
    return amb + (unload_c - amb) * math.exp(-(line.now - ended) / tau)


def _start(line: _Line, tool: str, step: str, ws: tuple[PlanWafer, ...], dur: float) -> None:
    line.busy[tool] = line.now + dur
    line.since[tool] = line.now
    line.busy_s[tool] = line.busy_s.get(tool, 0.0) + dur
    line.decisions.append(Decision(line.now, tool, step, tuple(w.wafer_id for w in ws)))
    for w in ws:
        w.step, w.tool = step, tool
        line.rows.append(StepRow(w.wafer_id, w.lot_id, step, tool, line.now, line.now + dur))


def _finish(line: _Line, what: str, tool: str, ws: tuple[PlanWafer, ...]) -> None:
    if what == "developed":
        for w in ws:
            w.developed, w.develop_end = True, line.now
        return
    step = ws[0].step
    if step == "expose":
        line.cycles.append(line.now - line.since[tool])
    if step == "cure":
        line.oven_left[tool] = (line.now, float(ws[0].flow.cure.unload_c))
    for w in ws:
        w.step = w.tool = ""
        if step == "cure":
            w.cured, w.cure_end = True, line.now
        elif step == "etch":
            w.etched = True
    del line.busy[tool]


@dataclass(frozen=True)
class Running:
    """A step under way when the plan starts: its tool, step, wafers and start (tool s)."""

    tool: str
    step: str
    wafer_ids: tuple[str, ...]
    since: float


def plan_from(wafers: Iterable[PlanWafer], running: Iterable[Running], kinds: dict[str, str],
              config: SequencerConfig, now: float) -> Plan:
    """The plan from the line's current state at tool time ``now``: a step under way ends
    when its model says, counted from its start; the rest as :func:`plan`. Times in the
    plan are from ``now``. ``wafers`` are fresh copies (the plan changes them); a final
    one (done, held, scrapped) has ``held`` set."""
    ws = list(wafers)
    line = _Line(dict(kinds), config, ws, now=now)
    index = {w.wafer_id: w for w in ws}
    first: list[tuple[float, str, str, tuple[PlanWafer, ...]]] = []
    for r in running:
        mine = tuple(index[i] for i in r.wafer_ids if i in index)
        if not mine or r.tool not in kinds:
            continue
        if r.step == "expose":
            dur, dev = expose_s(mine[0].flow, config)
            if not mine[0].developed:
                first.append((max(now, r.since + dev), "developed", r.tool, mine))
        elif r.step == "cure":
            dur = expected_cure_s(mine[0].flow.cure, config)
            line.cure_expected[r.tool] = dur
        else:
            dur = etch_s(mine[0].flow, config)
        end = max(now, r.since + dur)
        line.busy[r.tool], line.since[r.tool] = end, r.since
        line.busy_s[r.tool] = end - now
        for w in mine:
            w.step, w.tool = r.step, r.tool
            line.rows.append(StepRow(w.wafer_id, w.lot_id, r.step, r.tool, now, end))
        first.append((end, "end", r.tool, mine))
    _run(line, first)
    return _result(line, kinds, now)
