"""How the screen shows things: tables of state → colour class, short code and words.

Every state is shown by colour *and* by text (a letter in a wafer-map slot, the
word on a card), so nothing relies on colour alone. The colour classes are
defined in ``static/screen.css`` (a palette that stays apart for the common
colour-vision deficiencies).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sequencer.faces.http.contract import LineEvent, LotView, ToolView, WaferSummary, WaferView
from sequencer.faces.report import COLUMNS, wafer_cells
from sequencer.process.lots import MAX_SLOTS
from sequencer.runner.run_report import WaferRow
from sequencer.states.job import FINAL as FINAL_JOB
from sequencer.states.substrate import FINAL as FINAL_WAFER


@dataclass(frozen=True)
class Look:
    css: str  # colour class in screen.css
    code: str  # one or two letters, for a wafer-map slot
    words: str  # for a person


#: E90 substrate states
WAFER_LOOK: dict[str, Look] = {
    "NEEDS_PROCESSING": Look("st-wait", "·", "waiting"),
    "IN_PROCESS": Look("st-run", "▶", "in process"),
    "PROCESSED": Look("st-ok", "✓", "processed"),
    "STOPPED": Look("st-held", "H", "held for disposition"),
    "ABORTED": Look("st-bad", "A", "aborted"),
    "REJECTED": Look("st-bad", "R", "rejected"),
    "LOST": Look("st-bad", "L", "lost"),
    "SKIPPED": Look("st-off", "S", "skipped"),
}
EMPTY_SLOT = Look("st-empty", "", "empty slot")
#: E40 process-job states
JOB_LOOK: dict[str, Look] = {
    "QUEUED": Look("st-wait", "Q", "queued"),
    "SETTING_UP": Look("st-run", "S", "setting up"),
    "WAITING_FOR_START": Look("st-wait", "W", "waiting for start"),
    "PROCESSING": Look("st-run", "P", "processing"),
    "PAUSING": Look("st-held", "p", "pausing"),
    "PAUSED": Look("st-held", "P", "paused"),
    "STOPPING": Look("st-held", "s", "stopping"),
    "ABORTING": Look("st-bad", "a", "aborting"),
    "PROCESS_COMPLETE": Look("st-ok", "✓", "complete"),
    "STOPPED": Look("st-held", "S", "stopped"),
    "ABORTED": Look("st-bad", "A", "aborted"),
}
#: E10 equipment states
E10_LOOK: dict[str, Look] = {
    "PRODUCTIVE": Look("st-run", "P", "productive"),
    "STANDBY": Look("st-wait", "S", "standby"),
    "ENGINEERING": Look("st-eng", "E", "engineering"),
    "SCHEDULED_DOWN": Look("st-off", "D", "scheduled down"),
    "UNSCHEDULED_DOWN": Look("st-bad", "U", "unscheduled down"),
    "NON_SCHEDULED": Look("st-off", "N", "non-scheduled"),
}
UNKNOWN = Look("st-off", "?", "unknown")
#: the results a wafer's record shows, in order: (data key, label, format, unit)
RESULTS: tuple[tuple[str, str, str, str], ...] = (
    ("dose", "dose", ".1f", "mJ/cm²"), ("depth_um", "depth", ".2f", "µm"),
    ("residual_um", "residual", ".2f", "µm"),
    ("residual_after_cure_um", "residual after cure", ".2f", "µm"),
    ("cure_batch", "oven batch", "d", ""), ("time_at_temp_s", "time at temperature", ".0f", "s"),
    ("etch_time_s", "etch time", "d", "s"), ("removed_um", "removed", ".2f", "µm"),
    ("open", "via open", "", ""), ("cure_excursion", "cure excursion", "", ""),
)


#: a tool card's key readings by tool kind: (gauge of ``tool_readings``, label, format, unit)
READINGS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "exposure": (("dose", "dose set", ".1f", "mJ/cm²"), ("intensity", "lamp", ".1f", "mW/cm²")),
    "oven": (("chamber_c", "PV", ".1f", "°C"), ("setpoint_c", "setpoint", ".1f", "°C"),
             ("o2_ppm", "O2", ".0f", "ppm"), ("n2_flow_slm", "N2", ".1f", "slm"),
             ("segment", "segment", "segment", ""), ("soak_left_s", "soak left", "s", "")),
    "etcher": (("pressure_mtorr", "pressure", ".0f", "mTorr"),
               ("rf_forward_w", "RF forward", ".0f", "W"),
               ("rf_reflected_w", "RF reflected", ".0f", "W"),
               ("oes_co", "OES CO", ".0f", "counts")),
}
NO_SEGMENT = 0xFFFF  # the oven's "no active segment"
#: the etcher's states before RF is on (the endpoint monitor has nothing to see yet)
_BEFORE_RF = frozenset({"IDLE", "LOADING", "READY", "PUMPING", "STABILIZING"})
_AFTER_MAIN = frozenset({"OVERETCH", "VENTING", "COMPLETE"})


def endpoint_text(event: LineEvent | None) -> str:
    """The etcher card's endpoint, from the etch step's last ``reading`` event (the tool's
    ``ETCH:STATus?``: RF seconds to the OES endpoint, or none yet), with the OES CO/O
    ratio the monitor watches while RF is on; the last etch's, with its wafer, once it
    ended; "—" before any etch."""
    if event is None:
        return "—"
    data = event.data
    state, at = str(data.get("state") or ""), data.get("endpoint_s")
    co, o = data.get("oes_co"), data.get("oes_o")
    if isinstance(at, int | float):
        text = f"detected at {duration_text(float(at))} of RF"
    elif state in _BEFORE_RF:
        text = "waiting for RF"
    elif state == "ETCHING":
        text = "watching, none yet"
    elif state in _AFTER_MAIN:
        text = "none found (the main etch ran its set time)"
    else:
        text = f"none (the etch stopped in {state or 'an unknown state'})"
    if state in ("ETCHING", "OVERETCH") and isinstance(co, int | float) \
            and isinstance(o, int | float) and o > 0:
        text += f" · OES CO/O {co / o:.2f}"
    return f"{event.wafer_id}: {text}" if event.wafer_id else text


def reading(value: float | None, fmt: str, unit: str) -> str:
    """A gauge as the card shows it; the oven's segment 1-based, "—" for none."""
    if value is None:
        return "—"
    if fmt == "segment":
        return "—" if value >= NO_SEGMENT else str(int(value) + 1)
    if fmt == "s":
        return duration_text(value)
    return f"{format(value, fmt)} {unit}".strip()


def look(table: dict[str, Look], state: str | None) -> Look:
    return table.get(state or "", UNKNOWN)


def tool_look(view: ToolView) -> Look:
    """A tool card's headline: held and unreachable first, then what the E10 state says."""
    if not view.connected:
        return Look("st-bad", "!", "not connected")
    if view.held:
        return Look("st-bad", "H", "held: needs a person")
    if view.engineering:
        return Look("st-eng", "E", f"taken for engineering by {view.taken_by or '?'}")
    if view.e10 is not None:
        return look(E10_LOOK, view.e10.state)
    return Look("st-run", "P", "busy") if view.busy else Look("st-wait", "S", "idle")


@dataclass(frozen=True)
class Slot:
    number: int
    wafer: WaferSummary | None
    look: Look


def wafer_map(lot: LotView) -> list[Slot]:
    """The cassette's slots 1…25, each with its wafer (or empty)."""
    by_slot = {w.slot: w for w in lot.wafers}
    return [Slot(n, by_slot.get(n), look(WAFER_LOOK, by_slot[n].state) if n in by_slot
                 else EMPTY_SLOT) for n in range(1, MAX_SLOTS + 1)]


@dataclass(frozen=True)
class Progress:
    done: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def progress(lot: LotView) -> Progress:
    """Wafers at a final state out of all of the lot's wafers."""
    return Progress(sum(1 for w in lot.wafers if w.state in FINAL_WAFER), len(lot.wafers))


def lot_active(lot: LotView) -> bool:
    return lot.state not in FINAL_JOB


def clock_text(t: float | None, now: float | None = None) -> str:
    """A unix time as the panel shows it: HH:MM:SS today, else the date too; — for None."""
    if t is None:
        return "—"
    now = time.time() if now is None else now
    fmt = "%H:%M:%S" if abs(now - t) < 12 * 3600 else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(t))


def duration_text(seconds: float) -> str:
    s = int(max(seconds, 0))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


def result_value(value: object, fmt: str, unit: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if fmt and isinstance(value, int | float):
        try:
            return f"{format(value, fmt)} {unit}".strip()
        except ValueError:
            pass
    return f"{value} {unit}".strip()


def _num(data: dict[str, object], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _int(data: dict[str, object], key: str) -> int | None:
    value = _num(data, key)
    return None if value is None else int(value)


def report_row(view: WaferView) -> WaferRow:
    """A wafer's row of the end-of-run report (faces/report.py), from its record."""
    d: dict[str, object] = dict(view.data)
    is_open = d.get("open")
    return WaferRow(view.lot_id, view.wafer_id, _num(d, "dose"), _num(d, "depth_um"),
                    _num(d, "residual_um"), _num(d, "residual_after_cure_um"),
                    _int(d, "cure_batch"), _int(d, "etch_time_s"),
                    is_open if isinstance(is_open, bool) else None, view.state,
                    view.reason or "")


def lot_table(views: list[WaferView]) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """The lot's table as ``viaform demo`` prints it: (column, justify) and text rows."""
    return [(c, str(j)) for c, j in COLUMNS], [wafer_cells(report_row(v)) for v in views]
