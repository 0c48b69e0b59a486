"""The daemon's Prometheus metrics, on ``prometheus_client``.

``LineMetrics`` has a registry of its own (never the process-global one: each app,
and each test, counts alone). What the line's events tell (wafers finished, step
durations, alarms, command latencies) goes into ``prometheus_client`` counters and
histograms as the events arrive (``observe``). What is a state, not an event (each
tool's E10 state and seconds in it, the lots by E40 state, the active alarms, the
event-stream clients) is read at scrape time: the custom collector calls ``scrape``
and turns the snapshot into gauge and counter families.

The text is ``prometheus_client``'s format 0.0.4 (``CONTENT_TYPE``), minus the
``*_created`` series the library adds to every counter and histogram: they are not
among the daemon's metrics. The library writes numbers as floats (``1.0``, ``le="300.0"``;
the form Prometheus 3 normalises ``le`` to on ingestion).
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sequencer.faces.http.contract import LineEvent
from sequencer.states.substrate import FINAL as WAFER_FINAL

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True)
class Scrape:
    """The line's state at scrape time. ``e10`` maps tool → (current state, seconds by
    state); ``lot_states`` has one E40 state per lot the daemon knows."""

    e10: Mapping[str, tuple[str, Mapping[str, float]]]
    lot_states: Iterable[str]
    active_alarms: int
    subscribers: int


class _ScrapeCollector(Collector):
    """The gauges read at scrape time (``scrape()`` is called once per scrape)."""

    def __init__(self, scrape: Callable[[], Scrape]) -> None:
        self._scrape = scrape

    def collect(self) -> Iterator[Metric]:
        now = self._scrape()
        state = GaugeMetricFamily("viaform_tool_e10_state",
                                  "1 for the E10 state each tool is in, 0 for the others.",
                                  labels=("state", "tool"))
        seconds = CounterMetricFamily("viaform_tool_e10_seconds",
                                      "Seconds each tool spent in each E10 state since start.",
                                      labels=("state", "tool"))
        for tool, (current, by_state) in now.e10.items():
            for name, secs in by_state.items():
                state.add_metric((name, tool), 1.0 if name == current else 0.0)
                seconds.add_metric((name, tool), secs)
        lots = GaugeMetricFamily("viaform_lots", "Lots known to the daemon, by E40 state.",
                                 labels=("state",))
        for name, count in Tally(now.lot_states).items():
            lots.add_metric((name,), count)
        yield state
        yield seconds
        yield lots
        yield GaugeMetricFamily("viaform_alarms_active", "Unacknowledged alarms.",
                                value=now.active_alarms)
        yield GaugeMetricFamily("viaform_event_subscribers", "Open event-stream clients.",
                                value=now.subscribers)


class _WithoutCreated(Collector):
    """The registry's families without their ``*_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class LineMetrics:
    """The daemon's metrics; ``observe`` every line event, ``render`` at scrape time."""

    def __init__(self, start_time: float, scrape: Callable[[], Scrape]) -> None:
        self.registry = CollectorRegistry()  # no collect() at register: the line may not run yet
        self._started: dict[tuple[str, str, str], float] = {}  # (tool, step, wafer) -> t
        reg = self.registry
        self.wafers = Counter("viaform_wafers", "Wafers that reached a final E90 state, by state.",
                              ("state",), registry=reg)
        self.steps = Histogram("viaform_step_duration_seconds",
                               "Duration of job steps, by tool and step.", ("step", "tool"),
                               buckets=STEP_BUCKETS, registry=reg)
        self.alarms = Counter("viaform_alarms", "Alarms raised, by tool and kind.",
                              ("kind", "tool"), registry=reg)
        self.commands = Histogram("viaform_command_duration_seconds",
                                  "Tool command latency, by tool and outcome.",
                                  ("outcome", "tool"), buckets=COMMAND_BUCKETS, registry=reg)
        reg.register(_ScrapeCollector(scrape))
        Gauge("viaform_daemon_start_time_seconds", "Unix time the daemon started.",
              registry=reg).set(start_time)
        self._out = _WithoutCreated(reg)

    def observe(self, event: LineEvent) -> None:
        data = event.data
        key = (event.tool or "", event.step or "", event.wafer_id or "")
        if event.kind == "wafer" and event.new_state() in WAFER_FINAL:
            self.wafers.labels(state=str(event.new_state())).inc()
        elif event.kind == "step_start":
            self._started[key] = event.t
        elif event.kind == "step_end":
            began = self._started.pop(key, None)
            duration = _number(data.get("duration_s"))
            if duration is None and began is not None:
                duration = max(0.0, event.t - began)
            if duration is not None:
                self.steps.labels(step=key[1], tool=key[0]).observe(duration)
        elif event.kind == "alarm":
            self.alarms.labels(kind=str(data.get("kind", "")), tool=event.tool or "").inc()
        elif event.kind == "command":
            duration = _number(data.get("duration_s"))
            if duration is not None:
                self.commands.labels(outcome=str(data.get("outcome", "ok")),
                                     tool=event.tool or "").observe(duration)

    def render(self) -> str:
        """The text exposition (``CONTENT_TYPE``), the scrape-time gauges read now."""
        return generate_latest(self._out).decode()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
