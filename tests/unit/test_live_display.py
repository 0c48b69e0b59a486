"""The live terminal display, rendered from a sequence of events into rich's recording
console: what a technician sees (alarms at the top, lot bars with counts and ETA, each
tool's step with its bar and time left, the oven's and etcher's readings, the wafer map
and its legend)."""

from __future__ import annotations

import io

from rich.console import Console

from sequencer.faces.progress import ProgressDisplay
from sequencer.faces.progress_view import MARKS
from sequencer.runner.alarms import Event

WIDTH = 140


def _display(tools: tuple[str, ...] = ("exposure", "oven", "etcher")) -> ProgressDisplay:
    display = ProgressDisplay(stream=io.StringIO(), live=False)
    display.seed_tools(tools)
    display.state.seed_lot("L1", [(slot, f"W{slot:02d}") for slot in range(1, 26)])
    return display


def _shown(display: ProgressDisplay, width: int = WIDTH) -> list[str]:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(display.renderable())
    return console.export_text().splitlines()


def _feed(display: ProgressDisplay, *events: Event) -> None:
    for ev in events:
        display.on_event(ev)


def _line(lines: list[str], *words: str) -> str:
    found = [ln for ln in lines if all(w in ln for w in words)]
    assert found, f"no line with {words} in:\n" + "\n".join(lines)
    return found[0]


def _tool_row(lines: list[str], tool: str) -> str:
    found = [ln for ln in lines if ln.split()[:1] == [tool]]
    assert found, f"no row for {tool} in:\n" + "\n".join(lines)
    return found[0]


def _exposed_two(display: ProgressDisplay) -> None:
    _feed(display,
          Event("job", 0.0, "L1", data={"src": "QUEUED", "dst": "EXECUTING"}),
          Event("step_start", 0.0, "L1", "W01", "exposure", "expose"),
          Event("step_end", 150.0, "L1", "W01", "exposure", "expose", {"ok": True}),
          Event("step_start", 150.0, "L1", "W02", "exposure", "expose"),
          Event("step_end", 250.0, "L1", "W02", "exposure", "expose", {"ok": True}),
          Event("step_start", 250.0, "L1", "W03", "exposure", "expose"))


def test_lot_bar_counts_wafers_done_and_gives_an_eta() -> None:
    display = _display()
    _exposed_two(display)
    assert "0/25 wafers done ETA —" in _line(_shown(display), "L1 EXECUTING")
    _feed(display, Event("wafer", 1000.0, "L1", "W01", data={"src": "IN_PROCESS",
                                                            "dst": "PROCESSED"}),
          Event("wafer", 1000.0, "L1", "W02", data={"src": "IN_PROCESS", "dst": "REJECTED"}))
    # two done at once (a batch's last step): no pace yet
    assert "2/25 wafers done ETA —" in _line(_shown(display), "L1 EXECUTING")
    _feed(display, *(Event("wafer", 1000.0 + 200 * k, "L1", f"W{k + 2:02d}",
                           data={"src": "IN_PROCESS", "dst": "PROCESSED"})
                     for k in range(1, 5)))
    line = _line(_shown(display), "L1 EXECUTING")
    # the last five finished 200 s apart (1000 … 1800 s): 19 more, 3800 s from the last
    assert "6/25 wafers done" in line and "ETA 1:03:20" in line
    assert "━" in line  # rich's bar


def test_each_tool_shows_its_step_bar_and_time_left() -> None:
    display = _display()
    _exposed_two(display)
    # the exposure step has no estimate of its own: the mean of its two finished (125 s)
    exposure = _line(_shown(display), "exposure ", "expose W03")
    assert "2:05" in exposure  # 125 s expected, 0 s in (now: the last event's time, 250)
    _feed(display, Event("step_end", 260.0, "L1", "W03", "exposure", "expose", {"ok": True}),
          Event("step_start", 260.0, "L1", "W04", "exposure", "expose"),
          Event("reading", 260.0, "L1", "W04", "exposure", "expose",
                {"elapsed_s": 0.0, "expected_s": 140.0, "dose_mj_cm2": 318.0}))
    exposure = _line(_shown(display), "exposure ", "expose W04")
    assert "2:20" in exposure and "dose 318 mJ/cm²" in exposure  # the step's own estimate
    _feed(display, Event("step_end", 400.0, "L1", "W04", "exposure", "expose", {"ok": True}),
          Event("step_start", 400.0, "L1", "W06", "exposure", "expose"))
    _feed(display, Event("step_start", 240.0, "L1", "W05", "etcher", "etch"),
          Event("reading", 400.0, "L1", "W05", "etcher", "etch",
                {"elapsed_s": 60.0, "expected_s": 260.0, "rf_forward_w": 300.0}))
    lines = _shown(display)
    # the step's own estimate: 260 s from RF on, 60 s in: 200 s left
    assert "3:20" in _line(lines, "etcher", "etch W05")
    # no estimate of its own: the mean of the finished ones, (150 + 100 + 10 + 140) / 4 s
    assert "1:40" in _line(lines, "exposure ", "expose W06")


def test_oven_and_etcher_readings_are_shown() -> None:
    display = _display()
    _exposed_two(display)
    _feed(display,
          Event("step_start", 300.0, "L1", "W01", "oven", "cure"),
          Event("step_start", 300.0, "L1", "W02", "oven", "cure"),
          Event("reading", 900.0, "L1", None, "oven", "cure", {
              "elapsed_s": 600.0, "expected_s": 12000.0, "chamber_c": 150.24,
              "setpoint_c": 150.0, "wafer_c": 148.9, "o2_ppm": 8, "n2_slm": 50.0,
              "segment": 0, "phase": "SOAK", "alarms": [], "state": "RUNNING",
              "wafers": ["W01", "W02"]}),
          Event("step_start", 905.0, "L1", "W03", "etcher", "etch"),
          Event("reading", 910.0, "L1", "W03", "etcher", "etch", {
              "elapsed_s": 4.0, "expected_s": 260.0, "rf_forward_w": 300.0,
              "rf_reflected_w": 2.0, "pressure_mtorr": 201.0, "endpoint_s": None,
              "state": "ETCHING"}))
    lines = _shown(display, width=180)
    oven = _line(lines, "oven", "cure batch of 2")
    for shown in ("PV 150.2 °C", "SP 150 °C", "wafer 148.9 °C", "O2 8 ppm", "N2 50.0 slm",
                  "segment 1", "SOAK", "3:09:50"):  # 12000 s from 300 s, now 910 s
        assert shown in oven, (shown, oven)
    etcher = _line(lines, "etcher", "etch W03")
    for shown in ("RF 300 W", "refl 2 W", "pressure 201 mTorr", "endpoint not yet"):
        assert shown in etcher, (shown, etcher)
    _feed(display, Event("reading", 1000.0, "L1", "W03", "etcher", "etch",
                         {"elapsed_s": 94.0, "expected_s": 180.0, "endpoint_s": 88.0}))
    assert "endpoint 88 s" in _line(_shown(display, width=180), "etcher", "etch W03")


def test_alarms_are_pinned_at_the_top_until_acknowledged_or_released() -> None:
    display = _display()
    _exposed_two(display)
    _feed(display,
          Event("alarm", 420.0, "L1", None, "etcher", None,
                {"id": 3, "kind": "RF_REFLECTED", "text": "reflected power 25 % of forward"}),
          Event("alarm", 430.0, "L1", None, "oven", None,
                {"id": 4, "kind": "TOOL_HELD", "text": "oven held: HIGH_LIMIT"}),
          Event("tool", 430.0, None, None, "oven", None,
                {"held": True, "alarm_id": 4, "reason": "high-limit trip latched"}))
    lines = _shown(display)
    assert "ACTIVE ALARMS (2)" in lines[0]
    top = "\n".join(lines[:4])
    assert "#4 oven: TOOL_HELD" in lines[1] and "#3 etcher: RF_REFLECTED" in lines[2]  # newest
    assert "since 7.0 min" in top and "reflected power 25 % of forward" in top
    assert "HELD (alarm #4): high-limit trip latched" in _tool_row(lines, "oven")
    _feed(display, Event("alarm_ack", 500.0, None, None, "etcher", None, {"id": 3, "by": "ann"}))
    lines = _shown(display)
    assert "ACTIVE ALARMS (1)" in lines[0] and "RF_REFLECTED" not in "\n".join(lines)
    _feed(display, Event("tool", 600.0, None, None, "oven", None,  # as the runner says it
                         {"held": False, "acked_by": "bob"}))
    lines = _shown(display)
    assert not any("ACTIVE ALARMS" in ln for ln in lines)
    assert lines[0].startswith("tool time")
    assert "HELD" not in _tool_row(lines, "oven")


def test_wafer_map_colours_each_slot_by_state_with_a_legend() -> None:
    display = _display()
    _exposed_two(display)
    _feed(display, Event("wafer", 500.0, "L1", "W02", data={"dst": "STOPPED",
                                                           "reason": "queue time"}))
    console = Console(record=True, width=WIDTH, file=io.StringIO())
    console.print(display.renderable())
    lines = console.export_text(clear=False).splitlines()
    row = _line(lines, "L1 ", "·")
    assert row.split()[1:5] == ["e", "H", "E", "·"]  # slot 1 exposed, 2 held, 3 exposing
    legend = _line(lines, "legend:")
    for mark, _, word in MARKS.values():
        assert f"{mark} {word}" in legend
    html = console.export_html(inline_styles=True)
    held_style, exposing_style = MARKS["STOPPED"][1], MARKS["expose"][1]
    assert held_style != exposing_style
    assert "color: #800000" in html and "color: #008080" in html  # red (held), cyan (exposing)


def test_tools_are_the_ones_the_events_name() -> None:
    display = _display(tools=())
    _feed(display, Event("step_start", 0.0, "L1", "W01", "etcher-2", "etch"))
    lines = _shown(display)
    assert "etch W01" in _line(lines, "etcher-2")
    assert not any(ln.lstrip().startswith("exposure") for ln in lines)


def test_plain_mode_stays_one_line_per_finished_step() -> None:
    out = io.StringIO()
    display = ProgressDisplay(stream=out, live=False)
    with display:
        _feed(display, Event("step_start", 0.0, "L1", "W1", "exposure", "expose"),
              Event("reading", 10.0, "L1", "W1", "exposure", "expose", {"elapsed_s": 10.0}),
              Event("step_end", 155.0, "L1", "W1", "exposure", "expose", {"ok": True}))
    assert out.getvalue().splitlines() == ["[    2.6 min] exposure expose W1 ok"]
