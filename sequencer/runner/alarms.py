"""Alarm records and raising: journaled, logged, and sent to the progress display.

An ``alarm`` event carries the journal's alarm id (``data.id``), so that the
daemon can show it and acknowledge it (``ack``: an ``alarm_ack`` event)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from sequencer.store.journal import Journal

log = structlog.get_logger("viaform.alarms")


@dataclass(frozen=True)
class Event:
    """What the live display hears: ``kind`` is ``wafer`` (state change), ``job``,
    ``step_start``, ``step_end``, ``alarm``, ``alarm_ack``, ``tool`` (UNKNOWN/OK/DOWN),
    ``batch``, and in the daemon ``take``/``give``."""

    kind: str
    t: float
    lot_id: str | None = None
    wafer_id: str | None = None
    tool: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class AlarmRecord:
    id: int
    tool: str
    kind: str
    text: str
    lot_id: str | None
    wafer_ids: tuple[str, ...]


class Alarms:
    """Raises alarms: one journal row, one warning log line, one ``alarm`` event."""

    def __init__(self, journal: Journal, emit: EventSink) -> None:
        self.journal = journal
        self.emit = emit
        self.raised: list[AlarmRecord] = []

    def raise_(self, tool: str, kind: str, text: str, *, lot_id: str | None = None,
               wafer_ids: Iterable[str] = (), down: bool = True) -> AlarmRecord:
        """``down``: the alarm says the tool cannot work (E10 UNSCHEDULED_DOWN until it is
        acknowledged); False for one about a wafer on a tool that carries on."""
        ids = tuple(wafer_ids)
        aid = self.journal.alarm(tool, kind, text, lot_id, ids)
        rec = AlarmRecord(aid, tool, kind, text, lot_id, ids)
        self.raised.append(rec)
        log.warning("alarm", tool=tool, kind=kind, text=text, wafers=list(ids))
        self.emit(Event("alarm", self.journal.now(), lot_id=lot_id, tool=tool,
                        data={"id": aid, "kind": kind, "text": text, "wafers": list(ids),
                              "down": down}))
        return rec

    def clear(self, rec: AlarmRecord) -> None:
        self.journal.clear_alarm(rec.id)

    def ack(self, alarm_id: int, tool: str, who: str) -> None:
        """An operator acknowledged the alarm: journaled as cleared, one ``alarm_ack`` event."""
        self.journal.clear_alarm(alarm_id)
        log.info("alarm acknowledged", alarm_id=alarm_id, tool=tool, who=who)
        self.emit(Event("alarm_ack", self.journal.now(), tool=tool,
                        data={"id": alarm_id, "by": who}))
