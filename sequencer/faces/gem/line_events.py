"""The line's events (``LineEvent``) as GEM collection events and alarms, as data.

``Translator.translate`` returns what one event means to the host: the collection
events to fire (name and DV values) and the alarms to set or clear. It keeps the little
state that needs: which viaform alarm id is which ALID (set by ``alarm``, cleared by its
``alarm_ack``), and which oven batch is open (the first ``step_start`` of a cure on a
tool opens one, its ``batch`` event closes it). A wafer's results (depth, residual, …)
are read from ``LineControl.wafer_results`` (memory, no history read) on a step's end and
on a substrate transition, so the report carries them as they were then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sequencer.faces.gem.tables import (
    JOB_EVENTS,
    JOB_OTHER,
    JOB_QUEUED,
    RESULTS,
    SUBSTRATE_EVENTS,
    SUBSTRATE_OTHER,
    alarm_name,
)
from sequencer.faces.http.contract import LineControl, LineError, LineEvent

Values = dict[str, object]


@dataclass
class Meaning:
    events: list[tuple[str, Values]] = field(default_factory=list)
    alarms: list[tuple[str, bool, str, Values]] = field(default_factory=list)


class Translator:
    def __init__(self, line: LineControl) -> None:
        self.line = line
        self.alarm_ids: dict[int, tuple[str, Values]] = {}  # viaform alarm id → ALID name
        self.batches: dict[str, bool] = {}  # tool → a batch is open
        self._kinds: dict[str, Callable[[LineEvent], Meaning]] = {
            "job": self._job, "wafer": self._wafer, "step_start": self._step,
            "step_end": self._step, "batch": self._batch, "alarm": self._alarm,
            "alarm_ack": self._alarm_ack, "e10": self._e10, "tool": self._tool,
            "take": self._tool, "give": self._tool}

    def restore_alarms(self) -> list[tuple[str, Values]]:
        """The ALIDs of the line's active alarms (at start: AlarmsSet as it stands)."""
        out = []
        for a in self.line.alarms(active_only=True):
            values: Values = {"ToolName": a.tool, "LotID": a.lot_id or ""}
            self.alarm_ids[a.id] = (alarm_name(a.tool, a.kind), values)
            out.append((alarm_name(a.tool, a.kind), values))
        return out

    def translate(self, event: LineEvent) -> Meaning:
        handler = self._kinds.get(event.kind)
        return handler(event) if handler is not None else Meaning()

    def _results(self, wafer_id: str | None) -> Values:
        view = self.line.wafer_results(wafer_id) if wafer_id else None
        if view is None:
            return {}
        return {dv: view.data[key] for dv, key in RESULTS.items()
                if view.data.get(key) is not None}

    def _ppid(self, lot_id: str | None) -> str:
        try:
            return self.line.lot(lot_id).flow if lot_id else ""
        except LineError:
            return ""

    def _job(self, e: LineEvent) -> Meaning:
        src, dst = e.data.get("src"), e.new_state()
        name = JOB_QUEUED if src is None else JOB_EVENTS.get((str(src), str(dst)), JOB_OTHER)
        return Meaning([(name, {"LotID": e.lot_id or "", "PPID": self._ppid(e.lot_id),
                                "JobState": dst or "", "JobPreviousState": src or ""})])

    def _wafer(self, e: LineEvent) -> Meaning:
        src, dst = str(e.data.get("src")), str(e.new_state())
        name = SUBSTRATE_EVENTS.get((src, dst), SUBSTRATE_OTHER)
        values: Values = {"SubstID": e.wafer_id or "", "LotID": e.lot_id or "",
                          "SubstState": dst, "SubstPreviousState": src,
                          "Reason": str(e.data.get("reason") or "")}
        view = self.line.wafer_results(e.wafer_id) if e.wafer_id else None
        if view is not None:
            values.update(Slot=view.slot, SubstLocation=view.location)
            values.update(self._results(e.wafer_id))
        return Meaning([(name, values)])

    def _step(self, e: LineEvent) -> Meaning:
        tool = e.tool or ""
        values: Values = {"ToolName": tool, "StepName": e.step or "", "LotID": e.lot_id or "",
                          "SubstID": e.wafer_id or ""}
        meaning = Meaning()
        if e.kind == "step_end":
            values["StepOK"] = bool(e.data.get("ok", True))
            values.update(self._results(e.wafer_id))
        meaning.events.append(("StepStarted" if e.kind == "step_start" else "StepEnded", values))
        if e.kind == "step_start" and e.step == "cure" and not self.batches.get(tool):
            self.batches[tool] = True
            meaning.events.insert(0, ("BatchStarted", {"ToolName": tool}))
        return meaning

    def _batch(self, e: LineEvent) -> Meaning:
        tool = e.tool or ""
        self.batches[tool] = False
        wafers = e.data.get("wafers") or []
        return Meaning([("BatchEnded", {"ToolName": tool, "BatchNo": e.data.get("batch_no"),
                                        "BatchWafers": ",".join(str(w) for w in wafers)})])

    def _alarm(self, e: LineEvent) -> Meaning:
        name = alarm_name(e.tool or "", str(e.data.get("kind", "")))
        values: Values = {"ToolName": e.tool or "", "LotID": e.lot_id or ""}
        if "id" in e.data:
            self.alarm_ids[int(e.data["id"])] = (name, values)
        return Meaning(alarms=[(name, True, str(e.data.get("text", "")), values)])

    def _alarm_ack(self, e: LineEvent) -> Meaning:
        entry = self.alarm_ids.pop(int(e.data.get("id", -1)), None)
        if entry is None:
            return Meaning()
        name, values = entry
        if any(n == name for n, _ in self.alarm_ids.values()):  # another of its kind is up
            return Meaning()
        return Meaning(alarms=[(name, False, f"acknowledged by {e.data.get('by', '?')}",
                                values)])

    def _e10(self, e: LineEvent) -> Meaning:
        return Meaning([("E10StateChanged", {"ToolName": e.tool or "",
                                             "E10State": e.data.get("state"),
                                             "E10PreviousState": e.data.get("previous")})])

    def _tool(self, e: LineEvent) -> Meaning:
        name = {"tool": "ToolCommunicationChanged", "take": "ToolTaken",
                "give": "ToolGiven"}[e.kind]
        reason = str(e.new_state() or e.data.get("by") or "") if e.kind == "tool" else str(
            e.data.get("by") or e.data.get("who") or "")
        return Meaning([(name, {"ToolName": e.tool or "", "Reason": reason})])
