"""Prometheus text exposition (format 0.0.4), hand-written: counters, gauges, histograms.

``LineMetrics`` turns the line's events into the daemon's metrics (wafers
processed, step durations, alarms, command latencies); tool E10 states and the
lots by E40 state are read at scrape time (``render`` is given them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .line import LineEvent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = tuple[tuple[str, str], ...]
STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
WAFER_FINAL = ("PROCESSED", "ABORTED", "STOPPED", "REJECTED", "LOST", "SKIPPED")


def fmt_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fmt_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels) + "}"


def labels_of(**kv: str) -> Labels:
    return tuple(sorted(kv.items()))


class Metric:
    """One metric family: name, help, type and its samples by label set."""

    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text.replace("\\", "\\\\").replace("\n", "\\n")

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def lines(self) -> list[str]:
        return [f"{self.name}{fmt_labels(k)} {fmt_value(v)}" for k, v in self.values.items()]


class Gauge(Counter):
    """Set at scrape time from a snapshot (``set_all``)."""

    kind = "gauge"

    def set_all(self, values: Mapping[Labels, float]) -> None:
        self.values = dict(values)


class SnapshotCounter(Gauge):
    """A counter whose values the daemon reads from a snapshot (e.g. E10 seconds)."""

    kind = "counter"


class Histogram(Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}  # counts, [sum, count]

    def observe(self, value: float, labels: Labels = ()) -> None:
        counts, total = self.series.setdefault(labels, ([0] * len(self.buckets), [0.0, 0.0]))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        total[0] += value
        total[1] += 1

    def lines(self) -> list[str]:
        out = []
        for labels, (counts, (total, n)) in self.series.items():
            for bound, count in zip(self.buckets, counts, strict=True):
                le = labels + (("le", fmt_value(bound)),)
                out.append(f"{self.name}_bucket{fmt_labels(le)} {count}")
            out.append(f"{self.name}_bucket{fmt_labels(labels + (('le', '+Inf'),))} {int(n)}")
            out.append(f"{self.name}_sum{fmt_labels(labels)} {fmt_value(total)}")
            out.append(f"{self.name}_count{fmt_labels(labels)} {int(n)}")
        return out


def render(metrics: Iterable[Metric]) -> str:
    lines: list[str] = []
    for metric in metrics:
        lines += metric.header() + metric.lines()
    return "\n".join(lines) + "\n"


class LineMetrics:
    """The daemon's metrics; ``observe`` every line event, ``render`` at scrape time."""

    def __init__(self, start_time: float) -> None:
        self._started: dict[tuple[str, str, str], float] = {}  # (tool, step, wafer) -> t
        self.wafers = Counter("viaform_wafers_total",
                              "Wafers that reached a final E90 state, by state.")
        self.steps = Histogram("viaform_step_duration_seconds",
                               "Duration of job steps, by tool and step.", STEP_BUCKETS)
        self.alarms = Counter("viaform_alarms_total", "Alarms raised, by tool and kind.")
        self.commands = Histogram("viaform_command_duration_seconds",
                                  "Tool command latency, by tool and outcome.", COMMAND_BUCKETS)
        self.e10_state = Gauge("viaform_tool_e10_state",
                               "1 for the E10 state each tool is in, 0 for the others.")
        self.e10_seconds = SnapshotCounter("viaform_tool_e10_seconds_total",
                                 "Seconds each tool spent in each E10 state since start.")
        self.lots = Gauge("viaform_lots", "Lots known to the daemon, by E40 state.")
        self.active_alarms = Gauge("viaform_alarms_active", "Unacknowledged alarms.")
        self.subscribers = Gauge("viaform_event_subscribers", "Open event-stream clients.")
        self.start = Gauge("viaform_daemon_start_time_seconds", "Unix time the daemon started.")
        self.start.set_all({(): start_time})

    def observe(self, event: LineEvent) -> None:
        data = event.data
        key = (event.tool or "", event.step or "", event.wafer_id or "")
        if event.kind == "wafer" and event.new_state() in WAFER_FINAL:
            self.wafers.inc(labels_of(state=str(event.new_state())))
        elif event.kind == "step_start":
            self._started[key] = event.t
        elif event.kind == "step_end":
            began = self._started.pop(key, None)
            duration = _number(data.get("duration_s"))
            if duration is None and began is not None:
                duration = max(0.0, event.t - began)
            if duration is not None:
                self.steps.observe(duration, labels_of(tool=key[0], step=key[1]))
        elif event.kind == "alarm":
            self.alarms.inc(labels_of(tool=event.tool or "", kind=str(data.get("kind", ""))))
        elif event.kind == "command" and _number(data.get("duration_s")) is not None:
            self.commands.observe(_number(data["duration_s"]) or 0.0,
                                  labels_of(tool=event.tool or "",
                                            outcome=str(data.get("outcome", "ok"))))

    def render(self, e10: Mapping[str, tuple[str, Mapping[str, float]]],
               lot_states: Iterable[str], active_alarms: int, subscribers: int) -> str:
        """``e10`` maps tool → (current state, seconds by state)."""
        states: dict[Labels, float] = {}
        seconds: dict[Labels, float] = {}
        for tool, (current, by_state) in e10.items():
            for state, secs in by_state.items():
                states[labels_of(tool=tool, state=state)] = 1.0 if state == current else 0.0
                seconds[labels_of(tool=tool, state=state)] = secs
        self.e10_state.set_all(states)
        self.e10_seconds.set_all(seconds)
        lots: dict[Labels, float] = {}
        for state in lot_states:
            key = labels_of(state=state)
            lots[key] = lots.get(key, 0.0) + 1
        self.lots.set_all(lots)
        self.active_alarms.set_all({(): float(active_alarms)})
        self.subscribers.set_all({(): float(subscribers)})
        return render([self.wafers, self.steps, self.alarms, self.commands, self.e10_state,
                       self.e10_seconds, self.lots, self.active_alarms, self.subscribers,
                       self.start])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
