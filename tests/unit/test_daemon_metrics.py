"""The daemon's metrics from the line's events and its state at scrape time, read back with
Prometheus's parser: the names, labels and values a dashboard queries."""

from __future__ import annotations

from sequencer.faces.http.contract import LineEvent
from sequencer.faces.http.metrics import CONTENT_TYPE, LineMetrics, Scrape
from tests.promtext import key, samples, types

IDLE = Scrape(e10={}, lot_states=[], active_alarms=0, subscribers=0)


def test_metrics_from_events_in_prometheus_text() -> None:
    now = Scrape(e10={"etcher": ("PRODUCTIVE", {"PRODUCTIVE": 2.5, "STANDBY": 0.0})},
                 lot_states=["QUEUED", "QUEUED", "PAUSED"], active_alarms=1, subscribers=0)
    m = LineMetrics(start_time=1.5, scrape=lambda: now)
    m.observe(LineEvent(kind="step_start", t=100, tool="etcher", step="etch", wafer_id="W1"))
    m.observe(LineEvent(kind="step_end", t=420, tool="etcher", step="etch", wafer_id="W1"))
    m.observe(LineEvent(kind="wafer", t=0, data={"src": "IN_PROCESS", "dst": "PROCESSED"}))
    m.observe(LineEvent(kind="wafer", t=0, data={"dst": "IN_PROCESS"}))  # not final
    m.observe(LineEvent(kind="alarm", t=0, tool="oven", data={"kind": 'o2 "high"\n'}))
    m.observe(LineEvent(kind="command", t=0, tool="oven", data={"duration_s": True}))  # junk
    text = m.render()
    got = samples(text)
    step = {"step": "etch", "tool": "etcher"}
    assert got[key("viaform_wafers_total", state="PROCESSED")] == 1
    assert got[key("viaform_step_duration_seconds_bucket", **step, le="300.0")] == 0
    assert got[key("viaform_step_duration_seconds_bucket", **step, le="600.0")] == 1
    assert got[key("viaform_step_duration_seconds_bucket", **step, le="+Inf")] == 1
    assert got[key("viaform_step_duration_seconds_count", **step)] == 1
    assert got[key("viaform_step_duration_seconds_sum", **step)] == 320
    assert got[key("viaform_alarms_total", kind='o2 "high"\n', tool="oven")] == 1
    assert got[key("viaform_tool_e10_state", state="PRODUCTIVE", tool="etcher")] == 1
    assert got[key("viaform_tool_e10_state", state="STANDBY", tool="etcher")] == 0
    assert got[key("viaform_tool_e10_seconds_total", state="PRODUCTIVE", tool="etcher")] == 2.5
    assert got[key("viaform_lots", state="QUEUED")] == 2
    assert got[key("viaform_lots", state="PAUSED")] == 1
    assert got[key("viaform_alarms_active")] == 1
    assert got[key("viaform_event_subscribers")] == 0
    assert got[key("viaform_daemon_start_time_seconds")] == 1.5
    assert "viaform_command_duration_seconds_count" not in text
    assert "_created" not in text  # the library's creation-time series are not ours
    assert types(text) == {
        "viaform_wafers": "counter", "viaform_step_duration_seconds": "histogram",
        "viaform_alarms": "counter", "viaform_command_duration_seconds": "histogram",
        "viaform_tool_e10_state": "gauge", "viaform_tool_e10_seconds": "counter",
        "viaform_lots": "gauge", "viaform_alarms_active": "gauge",
        "viaform_event_subscribers": "gauge", "viaform_daemon_start_time_seconds": "gauge"}
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_scrape_time_values_are_read_at_each_scrape_and_counts_keep_per_daemon() -> None:
    now = Scrape(e10={}, lot_states=["QUEUED"], active_alarms=0, subscribers=3)
    m = LineMetrics(0.0, lambda: now)
    assert samples(m.render())[key("viaform_lots", state="QUEUED")] == 1
    now = Scrape(e10={}, lot_states=["PROCESSING", "PROCESSING"], active_alarms=2,
                 subscribers=3)
    got = samples(m.render())
    assert key("viaform_lots", state="QUEUED") not in got  # a state no lot is in is gone
    assert got[key("viaform_lots", state="PROCESSING")] == 2
    assert got[key("viaform_alarms_active")] == 2
    m.observe(LineEvent(kind="command", t=0, tool="oven",
                        data={"duration_s": 0.003, "outcome": "error"}))
    other = LineMetrics(0.0, lambda: IDLE)  # a second daemon in the process counts alone
    assert "viaform_command_duration_seconds_count" not in other.render()
    cmd = {"outcome": "error", "tool": "oven"}
    got = samples(m.render())
    assert got[key("viaform_command_duration_seconds_bucket", **cmd, le="0.0025")] == 0
    assert got[key("viaform_command_duration_seconds_bucket", **cmd, le="0.005")] == 1
    assert got[key("viaform_command_duration_seconds_count", **cmd)] == 1


def test_step_duration_from_the_event_when_given_else_from_the_start() -> None:
    m = LineMetrics(0.0, lambda: IDLE)
    m.observe(LineEvent(kind="step_start", t=10, tool="oven", step="cure", wafer_id="W1"))
    m.observe(LineEvent(kind="step_end", t=20, tool="oven", step="cure", wafer_id="W1",
                        data={"duration_s": 7200.0}))
    m.observe(LineEvent(kind="step_end", t=20, tool="oven", step="cure", wafer_id="W2"))
    got = samples(m.render())  # W2 never started: no duration, nothing observed
    assert got[key("viaform_step_duration_seconds_count", step="cure", tool="oven")] == 1
    assert got[key("viaform_step_duration_seconds_sum", step="cure", tool="oven")] == 7200


def test_the_line_is_not_read_before_the_first_scrape() -> None:
    calls: list[int] = []

    def scrape() -> Scrape:  # the engine starts in the app's lifespan, after create_app
        calls.append(1)
        return IDLE
    m = LineMetrics(0.0, scrape)
    assert calls == []
    m.render()
    assert calls == [1]
