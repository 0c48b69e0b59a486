"""The live progress display of a run: per tool, per wafer.

Fed with the scheduler's events (``sequencer.runner.alarms.Event``). On a terminal it
redraws in place (rich ``Live``); elsewhere (CI, a pipe, a log file) it prints
one plain line per finished step, batch and alarm, so the output stays readable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sequencer.runner.alarms import Event
from sequencer.states.substrate import FINAL

#: short mark for a wafer's display state
MARKS = {
    "waiting": ("·", "dim"),
    "expose": ("E", "cyan"),
    "exposed": ("e", "cyan"),
    "cure": ("C", "yellow"),
    "cured": ("c", "yellow"),
    "etch": ("X", "magenta"),
    "PROCESSED": ("✓", "green"),
    "REJECTED": ("R", "red"),
    "STOPPED": ("H", "red"),
    "ABORTED": ("A", "red"),
    "LOST": ("L", "red"),
    "SKIPPED": ("S", "dim"),
}
DONE_MARK = {"expose": "exposed", "cure": "cured", "etch": "etch"}


@dataclass
class ProgressState:
    """What the display shows, kept from events alone."""

    wafers: dict[str, str] = field(default_factory=dict)  # wafer id → display state
    tools: dict[str, str] = field(default_factory=dict)  # tool → current activity
    jobs: dict[str, str] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)
    t0: float | None = None
    t: float = 0.0

    def feed(self, ev: Event) -> str | None:
        """Update from one event; return a plain line worth printing, if any."""
        if self.t0 is None:
            self.t0 = ev.t
        self.t = ev.t
        elapsed = f"[{(ev.t - self.t0) / 60:7.1f} min]"
        if ev.kind == "step_start" and ev.wafer_id and ev.step:
            self.wafers[ev.wafer_id] = ev.step
            if ev.step == "cure":  # a batch: one event per wafer
                n = sum(1 for s in self.wafers.values() if s == "cure")
                self.tools[ev.tool or ev.step] = f"curing a batch of {n}"
            else:
                self.tools[ev.tool or ev.step] = f"{ev.step} {ev.wafer_id}"
        elif ev.kind == "step_end" and ev.wafer_id and ev.step:
            if self.wafers.get(ev.wafer_id) not in FINAL:
                self.wafers[ev.wafer_id] = DONE_MARK.get(ev.step, ev.step)
            self.tools[ev.tool or ev.step] = "idle"
            if ev.step != "cure":
                ok = "ok" if ev.data.get("ok") else "FAILED"
                return f"{elapsed} {ev.tool:8s} {ev.step:6s} {ev.wafer_id} {ok}"
        elif ev.kind == "wafer" and ev.wafer_id:
            dst = str(ev.data.get("dst", ""))
            if dst in FINAL:
                self.wafers[ev.wafer_id] = dst
                reason = ev.data.get("reason") or ""
                return f"{elapsed} wafer    {ev.wafer_id} {dst}{': ' + reason if reason else ''}"
            self.wafers.setdefault(ev.wafer_id, "waiting")
        elif ev.kind == "batch":
            wafers = ev.data.get("wafers", [])
            cured = ev.data.get("cured", [])
            return (
                f"{elapsed} oven     batch {ev.data.get('batch_no')}: "
                f"{len(cured)}/{len(wafers)} wafers cured"
            )
        elif ev.kind == "job" and ev.lot_id:
            self.jobs[ev.lot_id] = str(ev.data.get("dst"))
            return f"{elapsed} lot      {ev.lot_id} {ev.data.get('dst')}"
        elif ev.kind == "alarm":
            line = (f"#{ev.data.get('id')} {ev.tool}: {ev.data.get('kind')}: "
                    f"{ev.data.get('text')}")
            self.alarms.append(line)
            return f"{elapsed} ALARM    {line}"
        elif ev.kind == "tool" and ev.tool:
            comms = ev.data.get("comms")
            self.tools[ev.tool] = f"comms {comms}"
            return f"{elapsed} {ev.tool:8s} comms {comms}"
        return None

    def render(self) -> Group:
        tools = Table.grid(padding=(0, 2))
        for name in ("exposure", "oven", "etcher"):
            tools.add_row(Text(name, style="bold"), self.tools.get(name, "idle"))
        grid = Text()
        for i, (wid, state) in enumerate(sorted(self.wafers.items())):
            mark, style = MARKS.get(state, ("?", ""))
            grid.append(f"{wid}:{mark} ", style=style)
            if i % 10 == 9:
                grid.append("\n")
        elapsed = (self.t - (self.t0 or self.t)) / 60
        parts: list = [Text(f"tool time {elapsed:.1f} min", style="bold"), tools, grid]
        parts += [Text(a, style="red") for a in self.alarms[-3:]]
        return Group(*parts)


class ProgressDisplay:
    """Use as a context manager; pass :meth:`on_event` to the scheduler."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.state = ProgressState()
        self._console = Console(file=self.stream)
        self._live: Live | None = None

    def seed(self, wafer_ids: Iterable[str]) -> None:
        for wid in wafer_ids:
            self.state.wafers.setdefault(wid, "waiting")

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._live = Live(self.state.render(), console=self._console, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.update(self.state.render())
            self._live.__exit__(None, None, None)

    def on_event(self, ev: Event) -> None:
        line = self.state.feed(ev)
        if self._live:
            self._live.update(self.state.render())
        elif line:
            print(line, file=self.stream, flush=True)
