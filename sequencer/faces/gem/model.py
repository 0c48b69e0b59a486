"""The E30 data model the handler serves: variable values, firing events, alarms.

``E30Model`` joins the tables (``tables.Tables``), the host's report model
(``reports.Reports``), the ECs (``variables.Constants``), the sender (``sender.Outbox``)
and the line. ``fire`` builds an event's S6F11 at once — the event's DVs from the values
given, every SV as it is now — and queues it; ``alarm`` keeps the set of set alarms (the
AlarmsSet SV), queues the S5F1 if the host enabled the alarm and fires AlarmSet /
AlarmCleared. Both may be called from the event loop or from the dispatcher thread
(one lock around the report model and the DATAID counter).

The GEM clock (Clock SV, S2F18, TIME) is the PC's clock plus the offset the host set
with S2F31, journaled (``e30.clock_offset``): viaform does not set the PC's clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sequencer.faces.gem.persist import GemStore
from sequencer.faces.gem.reports import Reports
from sequencer.faces.gem.rows import VarClass
from sequencer.faces.gem.sender import Outbox
from sequencer.faces.gem.tables import Tables
from sequencer.faces.gem.variables import (
    Constants,
    ToolSV,
    clock_text,
    encode,
    tool_sv_index,
    tool_value,
)
from sequencer.faces.http.contract import LineControl
from sequencer.states.job import FINAL as JOB_FINAL

if TYPE_CHECKING:
    from sequencer.faces.gem.equipment import GemEquipment


class E30Model:
    def __init__(self, tables: Tables, store: GemStore, line: LineControl,
                 e10: Callable[[str], str], mdln: str, softrev: str) -> None:
        self.tables, self.store, self.line, self.e10 = tables, store, line, e10
        self.mdln, self.softrev = mdln, softrev
        self.reports = Reports(tables, store)
        self.reports.restore()
        self.constants = Constants(tables, store, line)
        self.tool_svs: dict[int, ToolSV] = tool_sv_index(tables, line.tools())
        self.alarms_set: set[int] = set()
        self.lock = threading.RLock()
        self.data_id = 0
        offset = store.get("e30.clock_offset")
        self.clock_offset = float(offset) if isinstance(offset, int | float) else 0.0
        self.handler: GemEquipment | None = None
        self.outbox: Outbox | None = None
        self._sv: dict[str, Callable[[], object]] = {
            "Clock": self.clock, "ControlState": lambda: self._h().control_value(),
            "PreviousControlState": lambda: self._h().previous_control,
            "EventsEnabled": lambda: sorted(self.reports.enabled),
            "AlarmsEnabled": lambda: sorted(self.reports.alarms_enabled),
            "AlarmsSet": lambda: sorted(self.alarms_set),
            "SpoolCountActual": self.store.spool_count,
            "SpoolCountTotal": lambda: self._box().state.total,
            "SpoolFullTime": lambda: self._stamp(self._box().state.full),
            "SpoolStartTime": lambda: self._stamp(self._box().state.start),
            "MDLN": lambda: self.mdln, "SOFTREV": lambda: self.softrev,
            "LotsActive": lambda: self.line.health().lots_active,
            "LotETAs": lambda: ",".join(f"{lot.lot_id}={self._stamp(lot.eta)}"
                                        for lot in self.line.lots()
                                        if lot.eta is not None and lot.state not in JOB_FINAL),
        }

    def attach(self, handler: GemEquipment, outbox: Outbox) -> None:
        self.handler, self.outbox = handler, outbox

    def _h(self) -> GemEquipment:
        assert self.handler is not None, "attach() first"
        return self.handler

    def _box(self) -> Outbox:
        assert self.outbox is not None, "attach() first"
        return self.outbox

    # ---- the clock -------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def time_format(self) -> int:
        return int(self.constants.get("TimeFormat"))

    def clock(self) -> str:
        return clock_text(self.time_format(), self.now())

    def _stamp(self, t: float | None) -> str:
        return "" if t is None else clock_text(self.time_format(), t + self.clock_offset)

    def set_clock(self, unix: float) -> None:
        self.clock_offset = unix - time.time()
        self.store.put("e30.clock_offset", self.clock_offset)

    # ---- values ---------------------------------------------------------------------------
    def raw(self, vid: int, dvs: Mapping[str, object] | None = None) -> object:
        """The Python value of a VID now (a DV from ``dvs``; None: no value)."""
        row = self.tables.variables[vid]
        if row.cls is VarClass.DV:
            return (dvs or {}).get(row.name)
        if row.cls is VarClass.EC:
            return self.constants.values.get(vid)
        getter = self._sv.get(row.name) or self._h().providers.get(row.name)
        if getter is not None:
            return getter()
        ref = self.tool_svs.get(vid)
        return tool_value(self.line, self.e10, ref) if ref is not None else None

    def value(self, vid: int, dvs: Mapping[str, object] | None = None) -> Any:
        """The secsgem item of a VID now; an unknown VID is an empty list (E5)."""
        row = self.tables.variables.get(vid)
        if row is None:
            return encode("L", [])
        return encode(row.fmt, self.raw(vid, dvs))

    # ---- events and alarms -------------------------------------------------------------------
    def fire(self, event: str, values: Mapping[str, object]) -> None:
        """Fire the collection event named ``event``; ``KeyError`` for an unknown name."""
        ce = self.tables.event_by_name[event]
        with self.lock:
            if not self.reports.wanted(ce.ceid) or self.outbox is None:
                return
            reports = self.reports.build(ce.ceid, lambda vid: self.value(vid, values))
            self.data_id = (self.data_id + 1) % 2**31
            message = self._h().stream_function(6, 11)(
                {"DATAID": self.data_id, "CEID": ce.ceid, "RPT": reports})
        self.outbox.put(message)

    def alarm(self, name: str, on: bool, text: str | None = None,
              values: Mapping[str, object] | None = None) -> None:
        row = self.tables.alarm_by_name[name]
        with self.lock:
            if (row.alid in self.alarms_set) == on:
                return
            (self.alarms_set.add if on else self.alarms_set.discard)(row.alid)
            enabled = row.alid in self.reports.alarms_enabled
        if enabled and self.outbox is not None:
            self.outbox.put(self._h().stream_function(5, 1)(
                {"ALCD": row.alcd | (0x80 if on else 0), "ALID": row.alid, "ALTX": row.text}))
        self.fire("AlarmSet" if on else "AlarmCleared",
                  {"ALID": row.alid, "AlarmText": text or row.text, **(values or {})})
