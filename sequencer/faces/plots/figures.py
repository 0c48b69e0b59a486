"""The plots, drawn on ``matplotlib.figure.Figure`` objects (no pyplot, no global state).

Each function returns a Figure on an Agg canvas; save it with
``fig.savefig(path_or_buffer, format=…)`` (PNG for ``viaform wafer plot``, SVG for the
screen). Lines, bands and markers carry a ``gid`` (``pv``, ``setpoint``, ``wafer``, ``o2``,
``n2``, ``soak``, ``excursion``, ``co``, ``o``, ``endpoint``, ``main_end``, ``bar``) so a
test or an SVG stylesheet can find them.

Colours are the Okabe–Ito set (colour-blind safe), and every series is also named in a
legend and told apart by line style, so none relies on colour alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure

from sequencer.faces.plots.schedule import LotSchedule
from sequencer.faces.plots.traces import CureTrace, EtchTrace, WaferTraces

#: Okabe–Ito
BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, BLACK = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SOAK_FILL = "#DDDDDD"
#: Gantt bar colour by tool position (tools are named by the journal, not assumed)
TOOL_COLOURS = (BLUE, ORANGE, GREEN, PURPLE, SKY, YELLOW)


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no backend chosen for the process (the
    screen and the CLI draw in the same way, on a tool PC without a display)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _series(t: Sequence[float], ys: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """The points that have a value (a reading the tool did not give is left out)."""
    pts = [(x, y) for x, y in zip(t, ys, strict=True) if y is not None]
    return [x / 60.0 for x, _ in pts], [y for _, y in pts]


def cure_figure(trace: CureTrace, *, title: str | None = None,
                figsize: tuple[float, float] = (10.0, 6.5)) -> Figure:
    """The oven batch: chamber PV, setpoint and wafer temperature (°C) with O2 (ppm, log) on
    a second axis above; N2 flow (slm) below; soaks shaded; excursions marked."""
    fig = _figure(figsize)
    draw_cure(fig, trace, title=title)
    return fig


def draw_cure(fig: Figure | SubFigure, trace: CureTrace, *, title: str | None = None) -> None:
    """:func:`cure_figure`'s drawing, on a figure or a part of one."""
    temp, n2 = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    temp.set_title(title or f"Oven batch {trace.batch_no}: temperature profile")
    for i, band in enumerate(trace.soaks):
        for ax in (temp, n2):
            ax.axvspan(band.t0_s / 60, band.t1_s / 60, color=SOAK_FILL, zorder=0,
                       gid="soak", label="soak" if i == 0 and ax is temp else None)
    temp.plot(*_series(trace.t_s, trace.chamber_c), color=VERMILION, lw=1.8,
              label="chamber PV", gid="pv")
    temp.plot(*_series(trace.t_s, trace.setpoint_c), color=BLACK, lw=1.2, ls="--",
              label="setpoint", gid="setpoint")
    temp.plot(*_series(trace.t_s, trace.wafer_c), color=ORANGE, lw=1.2, ls="-.",
              label="wafer", gid="wafer")
    temp.set_ylabel("temperature (°C)")
    o2 = temp.twinx()
    o2.plot(*_series(trace.t_s, trace.o2_ppm), color=BLUE, lw=1.0, ls=":", label="O2",
            gid="o2")
    if trace.o2_limit_ppm is not None:
        o2.axhline(trace.o2_limit_ppm, color=BLUE, lw=0.8, ls=(0, (1, 3)),
                   label=f"O2 limit {trace.o2_limit_ppm:g} ppm", gid="o2_limit")
    o2.set_yscale("symlog", linthresh=10.0)  # ~3 ppm in a cure, 209 000 in air
    o2.set_ylim(bottom=0)
    o2.set_ylabel("O2 (ppm)")
    n2.plot(*_series(trace.t_s, trace.n2_slm), color=GREEN, lw=1.4, label="N2 flow", gid="n2")
    if trace.n2_setpoint_slm is not None:
        n2.axhline(trace.n2_setpoint_slm, color=GREEN, lw=0.8, ls="--",
                   label=f"N2 setpoint {trace.n2_setpoint_slm:g} slm", gid="n2_setpoint")
    n2.set_ylabel("N2 flow (slm)")
    n2.set_xlabel("time from program start (min)")
    n2.set_ylim(bottom=0)
    _mark_excursions(temp, trace)
    handles = [*temp.get_legend_handles_labels()[0], *o2.get_legend_handles_labels()[0]]
    temp.legend(handles=handles, loc="upper right", fontsize="small")
    n2.legend(loc="lower right", fontsize="small")
    for ax in (temp, n2):
        ax.grid(True, alpha=0.3)


def _mark_excursions(ax: Axes, trace: CureTrace) -> None:
    """A vertical line at each excursion (solid: detected by the watch; dotted: an oven
    alarm bit), named by its kind at the top of the axes."""
    for i, e in enumerate(trace.excursions):
        ax.axvline(e.t_s / 60, color=VERMILION, lw=1.2, ls="-" if e.source == "watch" else ":",
                   gid="excursion", label="excursion" if i == 0 else None)
        ax.annotate(e.kind, (e.t_s / 60, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(2, -12), textcoords="offset points", color=VERMILION,
                    fontsize="small", gid="excursion_label")


def etch_figure(trace: EtchTrace, *, title: str | None = None,
                figsize: tuple[float, float] = (10.0, 4.5)) -> Figure:
    """The etch's OES: CO 483.5 nm and O 777.4 nm (counts) against RF time; the endpoint
    and the end of the main etch marked."""
    fig = _figure(figsize)
    draw_etch(fig, trace, title=title)
    return fig


def draw_etch(fig: Figure | SubFigure, trace: EtchTrace, *, title: str | None = None) -> None:
    """:func:`etch_figure`'s drawing, on a figure or a part of one."""
    ax = fig.subplots()
    ax.set_title(title or "Etch: optical emission")
    ax.plot(trace.co_t_s, trace.co_counts, color=BLUE, lw=1.6, label="CO 483.5 nm", gid="co")
    if trace.o_t_s:
        ax.plot(trace.o_t_s, trace.o_counts, color=ORANGE, lw=1.4, ls="--",
                label="O 777.4 nm", gid="o")
    if trace.endpoint_s is not None:
        ax.axvline(trace.endpoint_s, color=VERMILION, lw=1.6, gid="endpoint",
                   label=f"endpoint {trace.endpoint_s:g} s")
    if trace.main_end_s is not None and trace.main_end_s != trace.endpoint_s:
        ax.axvline(trace.main_end_s, color=BLACK, lw=1.0, ls=":", gid="main_end",
                   label=f"main etch end {trace.main_end_s:g} s")
    ax.set_xlabel("time from RF on (s)")
    ax.set_ylabel("emission (counts)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")


def wafer_figure(traces: WaferTraces) -> Figure:
    """Both plots of one wafer, one above the other (the oven batch's, then the etch's), for
    what the journal has of them; ValueError if it has neither."""
    parts: list[tuple[float, Callable[[SubFigure], None]]] = []
    cure, etch = traces.cure, traces.etch
    if cure is not None:
        parts.append((6.5, lambda sub: draw_cure(sub, cure, title=f"Oven batch "
                                                 f"{cure.batch_no}: temperature profile")))
    if etch is not None:
        parts.append((4.5, lambda sub: draw_etch(sub, etch)))
    if not parts:
        raise ValueError(f"wafer {traces.wafer_id} has no traces yet (not cured, not etched)")
    heights = [h for h, _ in parts]
    fig = _figure((10.0, sum(heights) + 0.4))
    fig.suptitle(f"Wafer {traces.wafer_id} (lot {traces.lot_id}, {traces.state})",
                 fontweight="bold")
    subs = fig.subfigures(len(parts), 1, height_ratios=heights, squeeze=False)[:, 0]
    for sub, (_, draw) in zip(subs, parts, strict=True):
        draw(sub)
    return fig


def gantt_figure(schedule: LotSchedule, *, title: str | None = None,
                 figsize: tuple[float, float] | None = None) -> Figure:
    """One row per tool (the journal's order), a bar per wafer step or oven batch, in tool
    time; a stay whose commands did not all succeed is hatched."""
    rows = schedule.tools
    fig = _figure(figsize or (11.0, 1.2 + 0.8 * max(1, len(rows))))
    ax = fig.subplots()
    ax.set_title(title or f"Lot {schedule.lot_id}: tool schedule")
    hours = schedule.makespan_s >= 3 * 3600
    unit = 3600.0 if hours else 60.0
    for bar in schedule.bars:
        y = rows.index(bar.tool)
        colour = TOOL_COLOURS[y % len(TOOL_COLOURS)]
        patch: Any = ax.broken_barh([(bar.start_s / unit, (bar.end_s - bar.start_s) / unit)],
                                    (y - 0.35, 0.7), facecolors=colour, edgecolor=BLACK,
                                    lw=0.5, hatch=None if bar.ok else "//", gid="bar")
        patch.set_label(f"{bar.tool}: {bar.label}")
        if len(schedule.bars) <= 60:
            ax.annotate(bar.label, ((bar.start_s + bar.end_s) / 2 / unit, y), ha="center",
                        va="center", fontsize="x-small", rotation=90 if bar.batch_no is None
                        else 0, gid="bar_label")
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(f"tool time from the lot's first command ({'h' if hours else 'min'})")
    ax.set_ylabel("tool")
    ax.grid(True, axis="x", alpha=0.3)
    return fig
