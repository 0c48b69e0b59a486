"""What a run reports: one row per wafer, the lots' end states, tool use, makespan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WaferRow:
    lot_id: str
    wafer_id: str
    dose: float | None
    depth_um: float | None
    residual_um: float | None
    residual_after_cure_um: float | None
    cure_batch: int | None
    etch_time_s: int | None
    open: bool | None
    state: str
    reason: str


@dataclass
class RunReport:
    rows: list[WaferRow]
    jobs: dict[str, str]
    busy_s: dict[str, float]
    utilisation: dict[str, float]
    makespan_s: float  # tool seconds
    makespan_wall_s: float
    batches: list[tuple[int | None, list[str]]] = field(default_factory=list)
    recovery: list[str] = field(default_factory=list)
    #: every step claimed (``policy.Decision``: tool s from the run's start, tool, step,
    #: wafers), in order: what the planner predicts, to compare
    decisions: list[Any] = field(default_factory=list)


def build_report(wafers: Iterable[Any], jobs: Mapping[str, Any], tools: Mapping[str, Any],
                 batches: list[tuple[int | None, list[str]]], notes: list[str], *,
                 span_s: float, wall_s: float) -> RunReport:
    """The report of a run that took ``span_s`` tool seconds (``wall_s`` wall)."""
    span = max(span_s, 1e-9)
    busy = {n: h.busy_s for n, h in tools.items()}
    rows = [WaferRow(w.lot_id, w.wafer_id, w.data.dose, w.data.depth_um, w.data.residual_um,
                     w.data.residual_after_cure_um, w.data.cure_batch, w.data.etch_time_s,
                     w.data.open, w.state, w.data.reason) for w in wafers]
    return RunReport(rows=rows, jobs={k: j.state for k, j in jobs.items()},
                     busy_s=busy, utilisation={n: min(1.0, b / span) for n, b in busy.items()},
                     makespan_s=span, makespan_wall_s=wall_s, batches=batches, recovery=notes)
