"""`viaform run LOTFILE…` and `viaform demo`: the sequencer's main jobs.

``run`` drives the tools of ``tools.yaml`` with a journal; killed and run again
with the same lot, it resumes from the journal. ``demo`` starts the bundled
simulators itself and runs the demo lot through the whole process.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from sequencer.faces.cli.plot import demo_plots
from sequencer.faces.logsetup import configure_logging
from sequencer.faces.progress import ProgressDisplay
from sequencer.faces.report import failures, print_report
from sequencer.line.assemble import ToolsUnreachable, run_lot_objects
from sequencer.line.config import ConfigError, ToolsConfig, load_tools
from sequencer.line.ownership import ClaimError, claim_line
from sequencer.line.simhost import SimControlError, SimThread, tools_config_for
from sequencer.process.lots import load_lot
from sequencer.process.recipes import Lot, RecipeError
from sequencer.runner.clock import SeqClock
from sequencer.runner.run_report import RunReport
from sequencer.store.journal import JournalError, ensure_journal_dir

DEMO_LOT = Path("configs/lots/demo.yaml")
DEMO_TIME_SCALE = 400.0


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"viaform: {message}", err=True)
    return typer.Exit(code)


def _lots(paths: list[Path]) -> list[Lot]:
    lots: list[Lot] = []
    for path in paths:
        try:
            lots.append(load_lot(path))
        except RecipeError as exc:
            if len(exc.problems) <= 1:  # one problem: one line
                raise _fail(f"{path} is not a valid lot: "
                            f"{exc.problems[0] if exc.problems else exc}", 2) from None
            problems = "\n".join(f"  {path}: {p}" for p in exc.problems)
            raise _fail(f"{path} is not a valid lot:\n{problems}", 2) from None
        except OSError as exc:
            raise _fail(f"{path}: {exc.strerror or exc}", 2) from None
    ids = [lot.lot_id for lot in lots]
    if len(set(ids)) != len(ids):
        raise _fail(f"the same lot id is given twice: {ids}", 2)
    return lots


def _execute(lots: list[Lot], cfg: ToolsConfig, db: Path, live: bool | None,
             probe_tools: bool = False,
             then: Callable[[RunReport], list[str]] | None = None) -> None:
    """Run the lots; a bad journal, a reused wafer id or an unreachable tool at start is
    one line and exit 2, with nothing sent to a tool (see ``run_lot_objects``). ``then``:
    lines to print after the report, whether the run completed or not."""
    display = ProgressDisplay(live=live, now=SeqClock(cfg.time_scale).now)
    display.seed_tools(cfg.entries)
    display.seed_lots(lots)
    try:
        with display:
            report = asyncio.run(run_lot_objects(lots, cfg, db, on_event=display.on_event,
                                                 probe_tools=probe_tools))
    except JournalError as exc:
        raise _fail(str(exc), 2) from None
    except ToolsUnreachable as exc:
        raise _fail(f"cannot reach {exc}; nothing was sent to the tools", 2) from None
    except SimControlError as exc:
        raise _fail(f"{exc}; nothing was sent to the tools", 2) from None
    print_report(report)
    for line in then(report) if then is not None else ():
        typer.echo(line)
    why = failures(report)
    if why:
        typer.echo("run did not complete:", err=True)
        for line in why:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)


LiveOpt = Annotated[
    bool | None,
    typer.Option("--live/--plain", help="redrawn display (default on a terminal) or plain lines"),
]

VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="debug log to stderr")]


def register(app: typer.Typer) -> None:
    """Add the top-level ``run`` and ``demo`` commands to ``app``."""

    @app.command()
    def run(
        lotfiles: Annotated[list[Path], typer.Argument(help="lot file(s)")],
        config: Annotated[Path | None, typer.Option("--config", help="tools.yaml")] = None,
        db: Annotated[Path | None, typer.Option("--db", help="journal path")] = None,
        live: LiveOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Run lots on the tools of tools.yaml; run again after a crash to resume."""
        configure_logging(verbose)
        lots = _lots(lotfiles)
        try:
            cfg = load_tools(config)
        except ConfigError as exc:
            raise _fail(str(exc), 2) from None
        journal = Path(os.path.abspath(db)) if db else cfg.journal  # --db: from the cwd
        typer.echo(f"viaform: journal {journal}", err=True)
        try:
            ensure_journal_dir(journal)
        except JournalError as exc:
            raise _fail(str(exc), 2) from None
        try:  # one owner of the line: before any tool is touched (sequencer/line/ownership.py)
            claim = claim_line(cfg, journal, " ".join(["viaform run", *(x.lot_id for x in lots)]))
        except ClaimError as exc:
            raise _fail(str(exc), 2) from None
        with claim:
            _execute(lots, cfg, journal, live, probe_tools=True)

    @app.command()
    def demo(
        lot: Annotated[Path, typer.Option("--lot", help="the lot to run")] = DEMO_LOT,
        time_scale: Annotated[
            float, typer.Option("--time-scale", help="tool seconds per wall second")
        ] = DEMO_TIME_SCALE,
        live: LiveOpt = None,
        seed: Annotated[int, typer.Option("--seed", help="simulators' random seed")] = 7,
        verbose: VerboseOpt = False,
    ) -> None:
        """Start the bundled simulators and run the demo lot through the whole process."""
        configure_logging(verbose)
        if not time_scale > 0:
            raise _fail(f"--time-scale must be > 0, got {time_scale}", 2)
        lots = _lots([lot])
        db = Path("var") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.db"
        typer.echo(f"starting the simulators (time scale {time_scale:g}) …")
        with SimThread(time_scale=time_scale, seed=seed) as sims:
            cfg = tools_config_for(sims.endpoints, time_scale, journal=str(db))
            lot0 = lots[0]
            typer.echo(f"running lot {lot0.lot_id} ({len(lot0.wafers)} wafers); journal {db}")
            _execute(lots, cfg, db, live, then=partial(_demo_plots, db, lot0.lot_id))


def _demo_plots(db: Path, lot_id: str, report: RunReport) -> list[str]:
    """The PNGs of one wafer (the first processed, else the first) and of the lot's Gantt
    chart, written beside the demo's journal."""
    rows = [r for r in report.rows if r.lot_id == lot_id]
    done = [r for r in rows if r.state == "PROCESSED"] or rows
    return demo_plots(db, lot_id, done[0].wafer_id if done else None)
