"""The live display fed by a real run on the simulators: what it shows mid-run is what the
tools report (the oven's chamber temperature in a soak, the etcher's RF power and pressure
while etching), and at the end every wafer is done on the lot's bar and the map."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sequencer.faces.progress import ProgressDisplay
from sequencer.process.lots import load_lot
from sequencer.runner.alarms import Event
from simulators.runner import SimThread

from .flowkit import InProcessRun, oven_reading, write_lot

SCALE = 1000.0
WAFERS = ["V01", "V02", "V03"]


def _text(display: ProgressDisplay) -> list[str]:
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(display.renderable())
    return console.export_text().splitlines()


def _row(lines: list[str], tool: str) -> str:
    return next(ln for ln in lines if ln.split()[:1] == [tool])


@pytest.mark.timeout(150)
def test_display_shows_the_tools_own_readings_and_the_lot_done(tmp_path: Path) -> None:
    lotfile = write_lot(tmp_path, "LIVE1", "FLOW-A", WAFERS)
    lot = load_lot(lotfile)
    display = ProgressDisplay(stream=io.StringIO(), live=False)
    display.seed_lots([lot])
    seen: dict[str, Any] = {}
    lock = threading.Lock()

    with SimThread(time_scale=SCALE, seed=9) as sims:
        def on_event(ev: Event) -> None:  # on the run's event loop
            display.on_event(ev)
            with lock:
                if ev.kind != "reading":
                    return
                if ev.tool == "oven" and ev.data.get("phase") == "SOAK" and "oven" not in seen:
                    seen["oven"] = (_text(display), oven_reading(sims)["chamber_c"])
                if (ev.tool == "etcher" and (ev.data.get("rf_forward_w") or 0) > 0
                        and "etcher" not in seen):
                    seen["etcher"] = _text(display)

        report = InProcessRun(sims, [lotfile], tmp_path / "journal.db",
                              on_event=on_event).report(120)
    assert {r.state for r in report.rows} == {"PROCESSED"}

    lines, chamber = seen["oven"]
    oven = _row(lines, "oven")
    pv = float(re.search(r"PV ([\d.]+) °C", oven).group(1))  # type: ignore[union-attr]
    assert pv == pytest.approx(chamber, abs=3.0)  # the simulator's own chamber, that moment
    assert f"SP {lot.flow.cure.segments[0].target_c:.0f} °C" in oven
    assert "SOAK" in oven and "segment 1" in oven and "cure batch of 3" in oven
    assert re.search(r"\d+:\d\d:\d\d", oven)  # time left on the program, h:mm:ss

    etcher = _row(seen["etcher"], "etcher")
    assert f"RF {lot.flow.etch.rf_power_w:.0f} W" in etcher
    pressure = float(re.search(r"pressure (\d+) mTorr", etcher).group(1))  # type: ignore[union-attr]
    assert pressure == pytest.approx(lot.flow.etch.pressure_mtorr, rel=0.05)
    assert re.search(r"etch V0\d", etcher)

    final = _text(display)
    assert "3/3 wafers done" in next(ln for ln in final if "LIVE1 PROCESS_COMPLETE" in ln)
    wafer_map = next(ln for ln in final if ln.startswith("LIVE1 ") and "done" not in ln)
    assert wafer_map.split()[1:] == ["✓"] * 3
    assert not any("ACTIVE ALARMS" in ln for ln in final)
    assert [ln.split()[0] for ln in final if ln.split()[:1] in (["exposure"], ["oven"],
                                                                ["etcher"])] \
        == ["exposure", "oven", "etcher"]  # the tools as the run's events named them
