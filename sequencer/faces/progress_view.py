"""Drawing the live display (``sequencer/faces/progress.py`` keeps its state) with rich's
own widgets: a ``Progress`` bar per lot, a ``ProgressBar`` per tool's step, tables.

Top to bottom: the active alarms (pinned, red), the tool-time clock, the lots (wafers
done of the lot, ETA at the lot's pace so far), the tools (the step and its wafers, its
own bar and time left, its live readings), the wafer maps (a row per lot, a column per
cassette slot) and their legend. A wafer's state shows as a mark and a colour, so it
reads without colour too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from sequencer.faces.progress import ProgressState, ToolLive

#: display state → (mark, style, legend word)
MARKS: dict[str, tuple[str, str, str]] = {
    "waiting": ("·", "dim", "waiting"),
    "expose": ("E", "bold cyan", "exposing"),
    "exposed": ("e", "cyan", "exposed"),
    "cure": ("C", "bold yellow", "curing"),
    "cured": ("c", "yellow", "cured"),
    "etch": ("X", "bold magenta", "etching"),
    "PROCESSED": ("✓", "bold green", "processed"),
    "REJECTED": ("R", "bold red", "rejected"),
    "STOPPED": ("H", "bold red", "held"),
    "ABORTED": ("A", "bold red", "aborted"),
    "LOST": ("L", "bold red", "lost"),
    "SKIPPED": ("S", "dim", "skipped"),
}
UNKNOWN_MARK = ("?", "", "unknown")
SLOTS = 25  # a cassette's slots (the map shows more if a lot has a higher slot)
PINNED = 4  # active alarms shown at the top, newest first; the rest are counted


def _num(fmt: str) -> Callable[[Any], str]:
    return lambda v: fmt.format(float(v))


#: a reading's key (as the steps publish it) → (label, how its value is shown); the
#: order here is the order shown. A key not listed is not shown.
READINGS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("dose_mj_cm2", "dose", _num("{:.0f} mJ/cm²")),
    ("chamber_c", "PV", _num("{:.1f} °C")),
    ("setpoint_c", "SP", _num("{:.0f} °C")),
    ("wafer_c", "wafer", _num("{:.1f} °C")),
    ("o2_ppm", "O2", _num("{:.0f} ppm")),
    ("n2_slm", "N2", _num("{:.1f} slm")),
    ("segment", "segment", lambda v: str(int(v) + 1)),  # the oven counts from 0
    ("phase", "", str),
    ("rf_forward_w", "RF", _num("{:.0f} W")),
    ("rf_reflected_w", "refl", _num("{:.0f} W")),
    ("pressure_mtorr", "pressure", _num("{:.0f} mTorr")),
    ("endpoint_s", "endpoint", lambda v: f"{float(v):.0f} s"),
)
#: shown for a key whose value is None (not yet known)
NOT_YET = {"endpoint_s": "endpoint not yet"}


def duration(s: float | None) -> str:
    """Tool seconds as h:mm:ss (or m:ss); "—" when unknown."""
    if s is None:
        return "—"
    s = max(0, round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def readings_text(values: dict[str, Any]) -> Text:
    out = Text()
    for key, label, show in READINGS:
        if key not in values:
            continue
        value = values[key]
        if value is None:
            part = NOT_YET.get(key)
            if part is None:
                continue
        else:
            part = f"{label} {show(value)}".strip()
        if out:
            out.append("  ")
        out.append(part)
    return out


def alarms_panel(state: ProgressState) -> Panel | None:
    if not state.alarms:
        return None
    active = sorted(state.alarms.values(), key=lambda a: a.t, reverse=True)
    lines = Text()
    for a in active[:PINNED]:
        if lines:
            lines.append("\n")
        at = (a.t - (state.t0 if state.t0 is not None else a.t)) / 60
        lines.append(f"#{a.id} {a.tool}: {a.kind}", style="bold")
        lines.append(f" (since {at:.1f} min tool time): {a.text}")
    if len(active) > PINNED:
        lines.append(f"\n… and {len(active) - PINNED} more active")
    return Panel(lines, title=f"ACTIVE ALARMS ({len(active)})", border_style="bold red",
                 style="red")


def lots_widget(state: ProgressState, now: float) -> Progress:
    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=30),
                    MofNCompleteColumn(), TextColumn("wafers done"),
                    TextColumn("ETA {task.fields[eta]}"), auto_refresh=False)
    for lot in state.lots.values():
        bars.add_task(f"{lot.lot_id} {lot.job}", total=lot.total or None,
                      completed=state.done(lot), eta=duration(state.eta_s(lot, now)))
    return bars


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _work(tool: ToolLive) -> Text:
    if tool.comms != "OK":
        return Text(f"comms {tool.comms}", style="bold red")
    if tool.held:  # the alarm's full text is pinned at the top
        alarm = f" (alarm #{tool.hold_alarm})" if tool.hold_alarm is not None else ""
        return Text(f"HELD{alarm}: {_short(tool.held)}", style="bold red")
    if tool.step is None:
        text = Text("idle", style="dim")
    elif len(tool.wafers) == 1:
        text = Text(f"{tool.step} {tool.wafers[0]}")
    else:
        text = Text(f"{tool.step} batch of {len(tool.wafers)}")
    if tool.taken_by:
        text.append(f" (taken by {tool.taken_by})", style="bold yellow")
    return text


def tools_table(state: ProgressState, now: float) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False)
    for col in ("tool", "work", "progress", "left", "readings"):
        table.add_column(col, style="bold" if col == "tool" else None)
    for tool in state.tools.values():
        bar: RenderableType = ""
        left = ""
        if tool.step is not None:
            expected, elapsed = tool.estimate_s(), tool.elapsed_s(now)
            bar = ProgressBar(total=expected, completed=min(elapsed, expected or elapsed),
                              width=20)
            left = "—" if expected is None else (
                duration(expected - elapsed) if elapsed <= expected else
                f"+{duration(elapsed - expected)} over")
        table.add_row(tool.name, _work(tool), bar, left, readings_text(tool.readings))
    return table


def wafer_map(state: ProgressState) -> Table:
    slots = max([SLOTS, *(max(lot.slots, default=0) for lot in state.lots.values())])
    table = Table(box=None, padding=(0, 0), show_edge=False, title="wafer map (slot)",
                  title_justify="left")
    table.add_column("lot", style="bold", no_wrap=True)
    for s in range(1, slots + 1):
        table.add_column(f"{s:>3}", justify="right")
    for lot in state.lots.values():
        cells = []
        for s in range(1, slots + 1):
            wid = lot.slots.get(s)
            if wid is None:
                cells.append(Text("  ", style="dim"))
                continue
            mark, style, _ = MARKS.get(state.wafers.get(wid, ""), UNKNOWN_MARK)
            cells.append(Text(f"  {mark}", style=style))
        table.add_row(f"{lot.lot_id} ", *cells)
    return table


def legend() -> Text:
    text = Text("legend: ")
    for mark, style, word in MARKS.values():
        text.append(mark, style=style)
        text.append(f" {word}  ")
    return text


def render(state: ProgressState, now: float) -> Group:
    """The whole display at tool time ``now``."""
    parts: list[RenderableType] = []
    alarms = alarms_panel(state)
    if alarms is not None:
        parts.append(alarms)
    elapsed = (now - (state.t0 if state.t0 is not None else now)) / 60
    parts.append(Text(f"tool time {elapsed:.1f} min", style="bold"))
    if state.lots:
        parts.append(lots_widget(state, now))
    parts.append(tools_table(state, now))
    if state.lots:
        parts += [wafer_map(state), legend()]
    return Group(*parts)
