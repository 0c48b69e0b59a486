"""The end-of-run report: a per-wafer table and a lot summary."""

from __future__ import annotations

from collections import Counter

from rich.console import Console, JustifyMethod
from rich.table import Table

from sequencer.runner.run_report import RunReport, WaferRow


def _num(value: float | int | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


#: the wafer table's columns and how each is justified
COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("lot", "left"), ("wafer", "left"), ("dose mJ/cm²", "right"), ("depth um", "right"),
    ("residual um", "right"), ("after cure um", "right"), ("batch", "right"),
    ("etch s", "right"), ("open", "center"), ("state", "left"), ("reason", "left"),
)


def wafer_cells(r: WaferRow) -> list[str]:
    """One wafer's row as text, in ``COLUMNS`` order (the terminal's and the screen's)."""
    return [r.lot_id, r.wafer_id, _num(r.dose, ".1f"), _num(r.depth_um, ".2f"),
            _num(r.residual_um, ".2f"), _num(r.residual_after_cure_um, ".2f"),
            _num(r.cure_batch, "d"), _num(r.etch_time_s, "d"),
            "—" if r.open is None else ("yes" if r.open else "NO"), r.state, r.reason or ""]


def wafer_table(report: RunReport) -> Table:
    table = Table(title="Wafers", show_lines=False)
    for col, just in COLUMNS:
        table.add_column(col, justify=just)
    state_col = [c for c, _ in COLUMNS].index("state")
    for r in report.rows:
        style = "green" if r.state == "PROCESSED" else "red"
        cells = wafer_cells(r)
        cells[state_col] = f"[{style}]{r.state}[/{style}]"
        table.add_row(*cells)
    return table


def summary_lines(report: RunReport) -> list[str]:
    states = Counter(r.state for r in report.rows)
    held = states.get("STOPPED", 0)
    lines = [
        f"wafers: {len(report.rows)} in, {states.get('PROCESSED', 0)} out (processed), "
        f"{states.get('REJECTED', 0)} rejected, {held} held, "
        f"{states.get('ABORTED', 0)} aborted, {states.get('LOST', 0)} lost",
        "lots: " + ", ".join(f"{lot} {state}" for lot, state in report.jobs.items()),
        "oven batches: " + ", ".join(f"#{b} ({len(ws)} wafers)" for b, ws in report.batches),
        "tool utilisation: "
        + ", ".join(f"{t} {u:.0%}" for t, u in sorted(report.utilisation.items())),
        f"time: {report.makespan_s / 3600:.2f} h simulated (tool time), "
        f"{report.makespan_wall_s:.1f} s wall",
    ]
    if report.recovery:
        lines.append("recovered from the journal: " + "; ".join(report.recovery))
    return lines


def print_report(report: RunReport, console: Console | None = None) -> None:
    """Print the table and summary; off a terminal, wide enough that no column is cut."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=170)
    console.print(wafer_table(report))
    for line in summary_lines(report):
        console.print(line, highlight=False)


def failures(report: RunReport) -> list[str]:
    """Why the run did not complete: every lot not PROCESS_COMPLETE, every wafer not out."""
    why = [f"lot {lot} ended {state}" for lot, state in report.jobs.items()
           if state != "PROCESS_COMPLETE"]
    why += [f"{r.wafer_id} {r.state}: {r.reason}" for r in report.rows if r.state != "PROCESSED"]
    return why
