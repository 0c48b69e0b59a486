"""Assemble the line from configuration: drivers, handling, journal, clock → a run.

This is the glue `viaform run` and `viaform demo` share. What to do lives in
``sequencer.steps``; how it runs in ``sequencer.scheduler``; here only which
tools, which journal and which clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from drivers.etcher import PlasmaEtcher
from drivers.exposure import ExposureTool
from drivers.oven import CureOven
from drivers.oven_types import OvenProgram, Segment

from .alarms import Event
from .clock import SeqClock
from .config import ToolsConfig
from .handling import SimHandling
from .journal import Journal
from .operator_moves import OperatorHandling
from .protocols import ToolSet
from .recipes import Lot
from .run_report import RunReport
from .scheduler import run_lots
from .simhost import SimControlClient
from .steps import SequencerConfig


def make_program(
    segments: Sequence[tuple[float, float, int]],
    o2_limit_ppm: int,
    n2_flow_slm: float,
    high_limit_c: float,
    unload_c: float,
    batch_no: int,
) -> OvenProgram:
    """The oven driver's program from the cure step's plain values."""
    return OvenProgram(
        segments=tuple(Segment(t, r, int(s)) for t, r, s in segments),
        o2_limit_ppm=int(o2_limit_ppm),
        n2_flow_slm=float(n2_flow_slm),
        high_limit_c=float(high_limit_c),
        unload_c=float(unload_c),
        batch_no=int(batch_no),
    )


def build_toolset(cfg: ToolsConfig) -> ToolSet:
    """The three drivers from ``tools.yaml`` (not yet connected: the steps connect)."""
    return ToolSet(
        exposure=ExposureTool.from_config(cfg.entry("exposure")),
        oven=CureOven.from_config(cfg.entry("oven")),
        etcher=PlasmaEtcher.from_config(cfg.entry("etcher")),
        make_program=make_program,
    )


async def run_lot_objects(
    lots: list[Lot],
    cfg: ToolsConfig,
    journal_path: Path,
    *,
    on_event: Callable[[Event], None] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunReport:
    """Run ``lots`` on the tools of ``cfg``.

    With simulated handling the world is told about the lots' wafers first (a
    wafer it knows already is left as it is, so a resumed run finds the wafers
    where they are); with operator handling each move waits for
    ``viaform wafer moved``.
    """
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    handling: SimHandling | OperatorHandling
    if cfg.handling == "operator":
        handling = OperatorHandling(journal_path, timeout_s=cfg.handling_timeout_s)
    else:
        handling = SimHandling(SimControlClient.from_config(cfg))
        for lot in lots:
            await handling.add_wafers([w.wafer_id for w in lot.wafers], lot.flow.exposure.film_um)
    journal = Journal(journal_path)
    try:
        return await run_lots(
            lots,
            build_toolset(cfg),
            handling,
            journal,
            SeqClock(cfg.time_scale),
            SequencerConfig.from_tools(cfg, **(overrides or {})),
            on_event,
        )
    finally:
        journal.close()
        handling.close()
