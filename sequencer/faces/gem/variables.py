"""Values of the GEM variables: SVs read from the line now, ECs kept in the journal.

``encode`` turns a Python value into the secsgem item of the row's format; ``None`` (no
value: a gauge the tool lacks, a DV the event does not carry) is an empty list, E5's
zero-length item. ``Constants`` holds the ECs: the ones the line applies
(``LineControl.set_constant``: queue-time limits, poll periods) and the ones the GEM
face uses itself (time format, spool bounds, T-values); a new value is range-checked
for every ECID of an S2F15 first (EAC 3 and nothing changed if one is out of range),
then journaled (``e30.ec.<ECID>``), audited and applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from secsgem.secs import variables as sv  # type: ignore[import-untyped]

from sequencer.faces.gem.context import StateStore
from sequencer.faces.gem.rows import Format, VarClass, Variable
from sequencer.faces.gem.tables import TOOL_SV_BASE, TOOL_SV_STRIDE, TOOL_SVS, Tables
from sequencer.faces.http.contract import LineControl

_CLASSES: dict[str, Any] = {"A": sv.String, "U1": sv.U1, "U2": sv.U2, "U4": sv.U4,
                            "I4": sv.I4, "F4": sv.F4, "F8": sv.F8, "BOOLEAN": sv.Boolean}


def encode(fmt: Format, value: object) -> Any:
    """The secsgem item for ``value`` in ``fmt`` (``L``: a list of U4 ids)."""
    if value is None:
        return sv.Array(sv.U4, [])
    if fmt == "L":
        return sv.Array(sv.U4, [int(v) for v in value])  # type: ignore[attr-defined]
    if fmt == "A":
        return sv.String(str(value))
    if fmt == "BOOLEAN":
        return sv.Boolean(bool(value))
    if fmt in ("F4", "F8"):
        return _CLASSES[fmt](float(value))  # type: ignore[arg-type]
    return _CLASSES[fmt](int(value))  # type: ignore[call-overload]


def clock_text(time_format: int, now: float | None = None) -> str:
    """E30 Clock / TIME: 0 → YYMMDDhhmmss (12), 1 → YYYYMMDDhhmmsscc (16)."""
    t = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(t))
    if time_format == 0:
        return stamp[2:]
    return stamp + f"{int((t % 1) * 100):02d}"


def parse_clock(text: str) -> float | None:
    """Unix time of a 12- or 16-character TIME, or None if it is not one."""
    text = text.strip()
    if not text.isdigit() or len(text) not in (12, 14, 16):
        return None
    full = text if len(text) != 12 else ("20" + text)
    try:
        base = time.mktime(time.strptime(full[:14], "%Y%m%d%H%M%S"))
    except (ValueError, OverflowError):
        return None
    return base + (int(full[14:16]) / 100 if len(full) == 16 else 0.0)


@dataclass(frozen=True)
class ToolSV:
    """Which tool and which ``TOOL_SVS`` template a per-tool VID is."""

    tool: str
    suffix: str


def tool_sv_index(tables: Tables, tools: list[str]) -> dict[int, ToolSV]:
    out = {}
    for index, tool in enumerate(tools):
        for t in TOOL_SVS:
            out[TOOL_SV_BASE + index * TOOL_SV_STRIDE + t.offset] = ToolSV(tool, t.suffix)
    return {vid: v for vid, v in out.items() if vid in tables.variables}


_GAUGE = {"ChamberTemperature": "chamber_c", "O2": "o2_ppm", "Pressure": "pressure_mtorr",
          "RFPower": "rf_forward_w"}


def tool_value(line: LineControl, e10: Callable[[str], str], ref: ToolSV) -> object:
    """The current value of one per-tool SV (None: the tool has no such gauge)."""
    if ref.suffix in _GAUGE:
        return line.tool_readings(ref.tool).get(_GAUGE[ref.suffix])
    if ref.suffix == "E10State":
        return e10(ref.tool)
    view = line.tool_status(ref.tool)
    return {"Kind": view.kind or ref.tool, "State": view.state or "", "Connected": view.connected,
            "Held": view.held, "CurrentLot": view.lot_id or "",
            "CurrentWafer": view.wafer_id or "", "Step": view.step or "",
            "Alarms": ",".join(view.alarms)}[ref.suffix]


# --- equipment constants ------------------------------------------------------------------
#: EC name → the line constant it sets (``poll_s.<tool>`` ECs are built per tool)
LINE_CONSTANTS = {"QueueTimeDevelopToCureS": "q_develop_cure_s",
                  "QueueTimeCureToEtchS": "q_cure_etch_s", "MaxBatchSize": "max_batch"}
EAC_OK, EAC_UNKNOWN, EAC_BUSY, EAC_RANGE = 0, 1, 2, 3


class Constants:
    """The EC values; ``line_name[ecid]`` is the line constant an EC applies."""

    def __init__(self, tables: Tables, store: StateStore, line: LineControl) -> None:
        self.rows = {v.vid: v for v in tables.variables.values() if v.cls is VarClass.EC}
        self.store = store
        self.line = line
        live = line.constants()
        self.line_name: dict[int, str] = {}
        for row in self.rows.values():
            target = LINE_CONSTANTS.get(row.name) or (
                f"poll_s.{row.name.removeprefix('PollPeriodS.')}"
                if row.name.startswith("PollPeriodS.") else None)
            if target is not None and target in live:
                self.line_name[row.vid] = target
        self.values: dict[int, float | str] = {}
        for vid, row in self.rows.items():
            saved = store.get(f"e30.ec.{vid}")
            if isinstance(saved, int | float | str) and not isinstance(saved, bool):
                self.values[vid] = saved
            elif vid in self.line_name:
                self.values[vid] = live[self.line_name[vid]]
            elif row.default is not None:
                self.values[vid] = row.default

    def restored(self) -> dict[str, float]:
        """The line constants to apply at start (the journaled values that differ)."""
        live = self.line.constants()
        return {name: float(self.values[vid]) for vid, name in self.line_name.items()
                if vid in self.values and float(self.values[vid]) != live.get(name)}

    def get(self, name: str) -> float | str:
        return next(self.values[v] for v, r in self.rows.items() if r.name == name)

    def check(self, changes: Mapping[int, object]) -> tuple[int, dict[int, float | str]]:
        """EAC for an S2F15 and the parsed values (applied only if EAC 0)."""
        parsed: dict[int, float | str] = {}
        for ecid, raw in changes.items():
            row = self.rows.get(ecid)
            if row is None:
                return EAC_UNKNOWN, {}
            value = _number(raw)
            if value is None or not _within(row, value):
                return EAC_RANGE, {}
            parsed[ecid] = int(value) if row.fmt in ("U1", "U2", "U4", "I4") else value
        return EAC_OK, parsed

    def save(self, parsed: Mapping[int, float | str]) -> None:
        with self.store.atomic():
            for ecid, value in parsed.items():
                self.store.put(f"e30.ec.{ecid}", value)
                self.values[ecid] = value

    def row(self, ecid: int) -> Variable:
        return self.rows[ecid]


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return None
    return None


def _within(row: Variable, value: float) -> bool:
    return ((row.minimum is None or value >= row.minimum)
            and (row.maximum is None or value <= row.maximum))
