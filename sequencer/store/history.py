"""Reading the journal's SQLite file (read-only): lots, a wafer's full history, alarms.

The daemon answers about lots it no longer holds in memory from here, and
``viaform wafer show`` reads a wafer's record here when no daemon runs. Opened
read-only (``mode=ro``): the journal's writer is ``sequencer.store.journal.Journal``
(in the engine's thread), and WAL lets this read alongside it.

Journal times are tool seconds (``SeqClock``: unix time × time_scale); every time
returned here is unix time (divided by ``time_scale``).

Acknowledgements need one thing the journal does not keep, who acknowledged: the
``alarm_acks`` table (written by the engine, through the journal's connection).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sequencer.store.journal import Intent, written_time_scale

ACKS_SCHEMA = """CREATE TABLE IF NOT EXISTS alarm_acks (alarm_id INTEGER PRIMARY KEY,
    t REAL NOT NULL, who TEXT NOT NULL)"""
#: the kind of the tool a journaled command went to → the step it belongs to
STEP_OF_TOOL = {"exposure": "expose", "oven": "cure", "etcher": "etch"}


@dataclass(frozen=True)
class LotRow:
    lot_id: str
    flow: str
    state: str
    created: float  # unix time
    wafers: list[tuple[str, int, str, dict[str, Any]]]  # (wafer_id, slot, state, data)


@dataclass(frozen=True)
class HistoryEntry:
    t: float  # unix time
    state: str
    location: str
    step: str
    phase: str
    note: str


@dataclass(frozen=True)
class AlarmRow:
    id: int
    t: float  # unix time
    tool: str
    kind: str
    text: str
    lot_id: str | None
    wafer_ids: list[str]
    cleared_t: float | None
    acked_by: str | None


def record_ack(db: sqlite3.Connection, alarm_id: int, unix_t: float, who: str) -> None:
    """Who acknowledged an alarm (on the journal's own, writable connection)."""
    db.execute(ACKS_SCHEMA)
    db.execute("INSERT OR REPLACE INTO alarm_acks VALUES (?,?,?)", (alarm_id, unix_t, who))


class History:
    """Read-only queries on a journal file. Its tool seconds are converted with the time
    scale the journal recorded, else ``time_scale`` (journals written before it did)."""

    def __init__(self, path: Path | str, time_scale: float = 1.0,
                 kinds: dict[str, str] | None = None) -> None:
        self.kinds = dict(kinds or {})  # tool name → kind (a name not in it: its own kind)
        self.path = Path(path)
        self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0,
                                  check_same_thread=False)
        self.scale = written_time_scale(self.db) or float(time_scale)

    def close(self) -> None:
        self.db.close()

    def _unix(self, t: float | None) -> float | None:
        return None if t is None else float(t) / self.scale

    def _has(self, table: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                               (table,)).fetchone() is not None

    def lots(self) -> list[LotRow]:
        if not self._has("lots"):
            return []
        rows = self.db.execute("SELECT lot_id, flow, job_state, created FROM lots "
                               "ORDER BY created, lot_id").fetchall()
        return [LotRow(lot, flow, state, self._unix(t) or 0.0, self.wafers(lot))
                for lot, flow, state, t in rows]

    def wafers(self, lot_id: str) -> list[tuple[str, int, str, dict[str, Any]]]:
        rows = self.db.execute("SELECT wafer_id, slot, state, data FROM wafers WHERE lot_id=? "
                               "ORDER BY slot", (lot_id,)).fetchall()
        return [(w, s, st, json.loads(d or "{}")) for w, s, st, d in rows]

    def wafer(self, wafer_id: str) -> tuple[str, int, str, dict[str, Any]] | None:
        """(lot_id, slot, state, data) as journaled, or None."""
        if not self._has("wafers"):
            return None
        row = self.db.execute("SELECT lot_id, slot, state, data FROM wafers WHERE wafer_id=?",
                              (wafer_id,)).fetchone()
        return None if row is None else (row[0], row[1], row[2], json.loads(row[3] or "{}"))

    def results(self, wafer_id: str) -> dict[str, dict[str, Any]]:
        """step → its measured results (the last journaled of each step)."""
        rows = self.db.execute("SELECT step, data FROM results WHERE wafer_id=? ORDER BY id",
                               (wafer_id,)).fetchall()
        return {step: json.loads(data) for step, data in rows}

    def wafer_history(self, wafer_id: str) -> list[HistoryEntry]:
        """Every state change, tool command (with its outcome) and result of the wafer, in
        time order; each entry carries the state and location the wafer had then."""
        raw: list[tuple[float, int, str, dict[str, Any]]] = []
        for t, src, dst, reason in self.db.execute(
                "SELECT t, src, dst, reason FROM transitions WHERE kind='wafer' AND subject=? "
                "ORDER BY id", (wafer_id,)):
            raw.append((t, 0, "state", {"src": src, "dst": dst, "reason": reason}))
        for t, tool, command, wafers, args, outcome, detail in self.db.execute(
                "SELECT t, tool, command, wafer_ids, args, outcome, detail FROM commands "
                "WHERE wafer_ids LIKE ? ORDER BY id", (f'%"{wafer_id}"%',)):
            if wafer_id in json.loads(wafers):
                raw.append((t, 1, "command", {"tool": tool, "command": command,
                                              "args": json.loads(args), "outcome": outcome,
                                              "detail": detail}))
        for t, step, data in self.db.execute("SELECT t, step, data FROM results WHERE "
                                             "wafer_id=? ORDER BY id", (wafer_id,)):
            raw.append((t, 2, "result", {"step": step, "data": json.loads(data)}))
        raw.sort(key=lambda r: (r[0], r[1]))
        state, location, out = "NEEDS_PROCESSING", "stocker", []
        for t, _, kind, d in raw:
            step = note = ""
            if kind == "state":
                state = d["dst"]
                note = f"{d['src']} → {d['dst']}" + (f": {d['reason']}" if d["reason"] else "")
            elif kind == "command":
                if d["tool"] == "handling" and d["outcome"] == "OK":
                    location = str(d["args"].get("to", location))
                step = STEP_OF_TOOL.get(self.kinds.get(d["tool"], d["tool"]), "")
                note = f"{d['tool']} {d['command']}: {d['outcome'] or 'no outcome'}" + \
                    (f" ({d['detail']})" if d["detail"] else "")
            else:
                step = d["step"]
                note = "result: " + ", ".join(f"{k}={v}" for k, v in d["data"].items()
                                              if not isinstance(v, list | dict))
            out.append(HistoryEntry(self._unix(t) or 0.0, state, location, step, "", note))
        return out

    def alarms(self) -> list[AlarmRow]:
        if not self._has("alarms"):
            return []
        acks = dict(self.db.execute("SELECT alarm_id, who FROM alarm_acks").fetchall()) \
            if self._has("alarm_acks") else {}
        rows = self.db.execute("SELECT id, t, tool, kind, text, lot_id, wafer_ids, cleared_t "
                               "FROM alarms ORDER BY id").fetchall()
        return [AlarmRow(i, self._unix(t) or 0.0, tool, kind, text, lot, json.loads(w or "[]"),
                         self._unix(cleared), acks.get(i))
                for i, t, tool, kind, text, lot, w, cleared in rows]

    def traces(self, subject: str) -> list[tuple[str, Any]]:
        """(kind, data) of every trace journaled for ``subject``, in the order written: a
        wafer id (``oes_co``, ``oes_o``) or ``batch-N`` (``oven_profile``, ``cure_watch``)."""
        if not self._has("traces"):
            return []
        rows = self.db.execute("SELECT kind, data FROM traces WHERE subject=? ORDER BY id",
                               (subject,)).fetchall()
        return [(kind, json.loads(data)) for kind, data in rows]

    def commands(self) -> list[Intent]:
        """Every journaled command (tools' and handling's), in the order sent; ``t`` and
        ``outcome_t`` in unix time."""
        if not self._has("commands"):
            return []
        rows = self.db.execute("SELECT id, t, tool, command, lot_id, wafer_ids, args, before, "
                               "outcome, outcome_t FROM commands ORDER BY id").fetchall()
        return [Intent(i, self._unix(t) or 0.0, tool, command, lot,
                       tuple(json.loads(w or "[]")), json.loads(a or "{}"),
                       json.loads(b or "{}"), outcome, self._unix(out_t))
                for i, t, tool, command, lot, w, a, b, outcome, out_t in rows]
