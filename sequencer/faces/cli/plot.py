"""`viaform wafer plot` and `viaform lot plot`: PNGs drawn from the journal, no daemon.

    viaform wafer plot A01 [A02 …] [--out FILE.png] [--db JOURNAL]
        the wafer's oven batch profile and its etch's OES trace, one PNG per wafer
        (one wafer: ``--out`` is the file; several: ``FILE-A01.png``, ``FILE-A02.png``;
        default ``<wafer>.png`` in the current directory)
    viaform lot plot LOT --out FILE.png [--db JOURNAL]
        the lot's Gantt chart: a row per tool, a bar per wafer step or oven batch

The journal is read read-only (``sequencer.store.history.History``), so a plot can be
drawn while a run or the daemon writes it. Bad input (no journal, not a journal, an
unknown wafer or lot, a wafer with no trace yet, an output that cannot be written) is
one line and exit 2, before any file is written. Registered by ``wafer.py`` and ``lot.py``.

matplotlib is imported when a plot is drawn, not when ``viaform`` starts.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sequencer.line.config import ConfigError, load_tools
from sequencer.store.history import History

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DbOpt = Annotated[Path | None, typer.Option("--db", help="journal (default: from tools.yaml)")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="tools.yaml")]
FORMATS = (".png", ".svg", ".pdf")


class PlotError(ValueError):
    """Bad input for a plot: the message is the one line the user sees."""


def _fail(command: str, message: str) -> typer.Exit:
    typer.echo(f"viaform {command}: {message}", err=True)
    return typer.Exit(2)


def open_history(config: Path | None, db: Path | None) -> History:
    """The journal (``--db``, else tools.yaml's), read-only; PlotError if there is none."""
    scale = 1.0
    if db is None:
        try:
            cfg = load_tools(config)
        except ConfigError as exc:
            raise PlotError(str(exc)) from None
        db, scale = cfg.journal, cfg.time_scale
    if not db.is_file():
        raise PlotError(f"no journal at {db}: nothing has run there yet")
    try:
        hist = History(db, scale)
        hist.lots()  # reads the schema: a file that is not a journal fails here
    except sqlite3.Error as exc:
        raise PlotError(f"{db} is not a journal ({exc})") from None
    return hist


def check_out(path: Path) -> None:
    """PlotError unless ``path`` names a format we draw and a directory we may write."""
    if path.suffix.lower() not in FORMATS:
        raise PlotError(f"--out {path}: the file name must end in {', '.join(FORMATS)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PlotError(f"--out {path}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and
                                                     not os.access(path, os.W_OK)):
        raise PlotError(f"--out {path}: cannot write there (permission denied)")


def save(fig: Figure, path: Path) -> None:
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise PlotError(f"--out {path}: {exc.strerror or exc}") from None


def wafer_outputs(wafers: list[str], out: Path | None) -> dict[str, Path]:
    if out is None:
        return {w: Path(f"{w}.png") for w in wafers}
    if len(wafers) == 1:
        return {wafers[0]: out}
    return {w: out.with_name(f"{out.stem}-{w}{out.suffix}") for w in wafers}


def draw_wafers(hist: History, outputs: dict[str, Path]) -> None:
    """Read every wafer's traces first (so a bad id writes nothing), then draw each."""
    from sequencer.faces.plots.figures import wafer_figure
    from sequencer.faces.plots.traces import UnknownWafer, wafer_traces

    for path in outputs.values():
        check_out(path)
    try:
        traces = {w: wafer_traces(hist, w) for w in outputs}
    except UnknownWafer as exc:
        raise PlotError(str(exc)) from None
    empty = [w for w, t in traces.items() if t.cure is None and t.etch is None]
    if empty:
        raise PlotError(f"no traces yet for {', '.join(empty)} in {hist.path} "
                        "(neither cured nor etched)")
    for w, t in traces.items():
        save(wafer_figure(t), outputs[w])


def draw_lot(hist: History, lot_id: str, out: Path) -> None:
    from sequencer.faces.plots.figures import gantt_figure
    from sequencer.faces.plots.schedule import UnknownLot, lot_schedule

    check_out(out)
    try:
        sched = lot_schedule(hist, lot_id)
    except UnknownLot as exc:
        raise PlotError(str(exc)) from None
    if not sched.bars:
        raise PlotError(f"lot {lot_id} has not started in {hist.path}: nothing to draw")
    save(gantt_figure(sched), out)


def wafer_plot(
    wafers: Annotated[list[str], typer.Argument(help="wafer id(s)")],
    out: Annotated[Path | None, typer.Option("--out", help="the PNG (several wafers: "
                                             "FILE-<wafer>.png each; default <wafer>.png)")]
    = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Draw a wafer's oven profile and OES trace from the journal to a PNG (no daemon)."""
    outputs = wafer_outputs(list(dict.fromkeys(wafers)), out)
    try:
        hist = open_history(config, db)
        try:
            draw_wafers(hist, outputs)
        finally:
            hist.close()
    except PlotError as exc:
        raise _fail("wafer plot", str(exc)) from None
    for w, path in outputs.items():
        typer.echo(f"wafer {w}: {path}")


def lot_plot(
    lot_id: Annotated[str, typer.Argument(help="lot id")],
    out: Annotated[Path, typer.Option("--out", help="the PNG")],
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Draw the lot's Gantt chart (a row per tool, a bar per wafer step or oven batch, in
    tool time) from the journal to a PNG (no daemon)."""
    try:
        hist = open_history(config, db)
        try:
            draw_lot(hist, lot_id, out)
        finally:
            hist.close()
    except PlotError as exc:
        raise _fail("lot plot", str(exc)) from None
    typer.echo(f"lot {lot_id}: {out}")


def demo_plots(db: Path, lot_id: str, wafer_id: str | None) -> list[str]:
    """After ``viaform demo``: one wafer's plots and the lot's Gantt chart beside the
    journal (``var/demo-….db`` → ``var/demo-…-<wafer>.png``, ``…-<lot>-gantt.png``); the
    lines that say where, or why not."""
    lines: list[str] = []
    try:
        hist = open_history(None, db)
    except PlotError as exc:
        return [f"plots: not drawn: {exc}"]
    try:
        base = db.with_suffix("")
        if wafer_id is not None:
            path = base.with_name(f"{base.name}-{wafer_id}.png")
            try:
                draw_wafers(hist, {wafer_id: path})
                lines.append(f"plots: wafer {wafer_id} (oven profile, OES trace): {path}")
            except PlotError as exc:
                lines.append(f"plots: wafer {wafer_id} not drawn: {exc}")
        path = base.with_name(f"{base.name}-{lot_id}-gantt.png")
        try:
            draw_lot(hist, lot_id, path)
            lines.append(f"plots: lot {lot_id} Gantt chart: {path}")
        except PlotError as exc:
            lines.append(f"plots: lot {lot_id} Gantt chart not drawn: {exc}")
    finally:
        hist.close()
    return lines
