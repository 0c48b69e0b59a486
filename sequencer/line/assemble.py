"""Assemble the line from configuration: drivers, handling, journal, clock → a run.

This is the glue `viaform run` and `viaform demo` share. What to do lives in
``sequencer.runner.steps``; how it runs in ``sequencer.runner.scheduler``; here only which
tools, which journal and which clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from drivers.etcher import PlasmaEtcher
from drivers.exposure import ExposureTool
from drivers.oven import CureOven
from drivers.oven_types import OvenProgram, Segment
from sequencer.line.config import ConfigError, ToolsConfig
from sequencer.line.handling import SimHandling
from sequencer.line.operator_moves import OperatorHandling
from sequencer.line.sim_control import SimControlClient
from sequencer.process.recipes import Lot
from sequencer.runner.alarms import Event
from sequencer.runner.clock import SeqClock
from sequencer.runner.protocols import ToolSet
from sequencer.runner.run_report import RunReport
from sequencer.runner.scheduler import run_lots
from sequencer.runner.steps import SequencerConfig
from sequencer.store.journal import Journal


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


#: a tool's kind → its driver class (each built from its tools.yaml entry)
DRIVERS: dict[str, Any] = {"exposure": ExposureTool, "oven": CureOven, "etcher": PlasmaEtcher}


def build_toolset(cfg: ToolsConfig) -> ToolSet:
    """Every tool's driver from ``tools.yaml`` (not yet connected: the steps connect). A
    line needs at least one tool of each kind (ConfigError naming the kind missing)."""
    for kind in DRIVERS:
        if not cfg.of_kind(kind):
            raise ConfigError(f"{cfg.path}: no {kind} tool (a line needs one of each kind: "
                              f"{', '.join(DRIVERS)})")
    return ToolSet(
        drivers={t: DRIVERS[k].from_config(cfg.entry(t)) for t, k in cfg.kinds.items()},
        kinds=dict(cfg.kinds),
        make_program=make_program,
    )


class ToolsUnreachable(RuntimeError):
    """Tools that did not answer a read-only probe at start; the message names each."""


async def probe(cfg: ToolsConfig) -> None:
    """Connect to each tool once (``*IDN?`` / a register read) and close again.

    Read-only: nothing that changes a tool is sent. :class:`ToolsUnreachable`
    names every tool that could not be reached, with its address and why.
    """
    drivers = build_toolset(cfg).drivers

    def one(name: str, driver: Any) -> str | None:
        try:
            driver.connect()
        except Exception as exc:  # any failure to reach it is reported, not raised
            text = str(exc) or type(exc).__name__
            return text if text.startswith(f"{name}") else f"{name}: {text}"
        driver.close()
        return None

    problems = [p for p in await asyncio.gather(
        *(asyncio.to_thread(one, n, d) for n, d in drivers.items())) if p]
    if problems:
        raise ToolsUnreachable("; ".join(problems))


async def run_lot_objects(
    lots: list[Lot],
    cfg: ToolsConfig,
    journal_path: Path,
    *,
    on_event: Callable[[Event], None] | None = None,
    overrides: dict[str, Any] | None = None,
    probe_tools: bool = False,
) -> RunReport:
    """Run ``lots`` on the tools of ``cfg``.

    The journal is opened first (a :class:`JournalError` for a bad one, or for a
    lot that reuses another lot's wafer ids), then, with ``probe_tools``, every
    tool is reached once (:class:`ToolsUnreachable`), all before anything is sent
    to a tool or to the simulated world. With simulated handling the world is
    then told about the lots' wafers (a wafer it knows already is left as it is,
    so a resumed run finds the wafers where they are); with operator handling
    each move waits for ``viaform wafer moved``.
    """
    clock = SeqClock(cfg.time_scale)
    journal = Journal(journal_path, now=clock.now, time_scale=clock.time_scale)  # tool s
    handling: SimHandling | OperatorHandling | None = None
    try:
        for lot in lots:
            journal.refuse_foreign_wafers(lot.lot_id, [w.wafer_id for w in lot.wafers])
        if probe_tools:
            await probe(cfg)
        if cfg.handling == "operator":
            handling = OperatorHandling(journal_path, timeout_s=cfg.handling_timeout_s)
        else:
            handling = SimHandling(SimControlClient.from_config(cfg))
            for lot in lots:
                await handling.add_wafers([w.wafer_id for w in lot.wafers],
                                          lot.flow.exposure.film_um)
        return await run_lots(
            lots,
            build_toolset(cfg),
            handling,
            journal,
            clock,
            SequencerConfig.from_tools(cfg, **(overrides or {})),
            on_event,
        )
    finally:
        journal.close()
        if handling is not None:
            handling.close()
