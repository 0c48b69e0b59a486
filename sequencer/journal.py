"""The journal: SQLite (stdlib ``sqlite3``, WAL, ``synchronous=FULL``).

Written before a command that changes a tool (an INTENT row) and after it (its
OUTCOME), so that after a crash every command in flight is known and can be
reconciled with the tool before anything is sent. Also: lots, wafers (state +
data, the source for ``set_state`` on restart), every state change, results,
traces (oven temperature profile, OES trace), alarms and oven batch numbers.

One connection, used from the event-loop thread only. Times are tool seconds
(the sequencer's scaled clock).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import crashpoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (lot_id TEXT PRIMARY KEY, flow TEXT, job_state TEXT,
    created REAL, data TEXT);
CREATE TABLE IF NOT EXISTS wafers (wafer_id TEXT PRIMARY KEY, lot_id TEXT, slot INTEGER,
    state TEXT, data TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS transitions (id INTEGER PRIMARY KEY, t REAL, kind TEXT,
    subject TEXT, src TEXT, dst TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS commands (id INTEGER PRIMARY KEY, t REAL, tool TEXT, command TEXT,
    lot_id TEXT, wafer_ids TEXT, args TEXT, before TEXT, outcome TEXT, outcome_t REAL,
    detail TEXT);
CREATE TABLE IF NOT EXISTS results (id INTEGER PRIMARY KEY, t REAL, wafer_id TEXT, step TEXT,
    data TEXT);
CREATE TABLE IF NOT EXISTS traces (id INTEGER PRIMARY KEY, t REAL, subject TEXT, kind TEXT,
    data TEXT);
CREATE TABLE IF NOT EXISTS alarms (id INTEGER PRIMARY KEY, t REAL, tool TEXT, kind TEXT,
    text TEXT, lot_id TEXT, wafer_ids TEXT, cleared_t REAL);
CREATE TABLE IF NOT EXISTS batches (batch_no INTEGER PRIMARY KEY, t REAL, recipe TEXT,
    wafer_ids TEXT, state TEXT);
"""


@dataclass(frozen=True)
class Intent:
    """A journaled command. ``before`` holds what was read from the tool just before it
    (``count``: JOB:COUNt? for the wafer, ``job_no``: JOB:LAST? number, ``boot``:
    SYSTem:BOOT?, ``batch_no``: the oven batch number intended)."""

    id: int
    t: float
    tool: str
    command: str
    lot_id: str | None
    wafer_ids: tuple[str, ...]
    args: dict[str, Any]
    before: dict[str, Any]
    outcome: str | None


class Journal:
    """The run's durable record. ``now`` gives tool seconds (defaults to epoch)."""

    def __init__(self, path: str | Path, now: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.now = now
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction for everything inside (nested uses join the outer one).

        A crash leaves all of it written or none of it: e.g. a start's OUTCOME and
        the wafer's phase that says the start was made.
        """
        if self.db.in_transaction:
            yield
            return
        self._x("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._x("ROLLBACK")
            raise
        self._x("COMMIT")

    def _x(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        _ = crashpoint.ACTIVE and crashpoint.before_write(sql, args := tuple(args))  # test hook
        return self.db.execute(sql, tuple(args))

    # ---- lots and wafers -------------------------------------------------
    def add_lot(self, lot_id: str, flow: str, wafers: Iterable[tuple[int, str]],
                data: dict[str, Any] | None = None) -> bool:
        """Record a lot and its wafers (NEEDS_PROCESSING). False if the lot was known."""
        if self._x("SELECT 1 FROM lots WHERE lot_id=?", (lot_id,)).fetchone():
            return False
        t = self.now()
        with self.atomic():
            self._x("INSERT INTO lots VALUES (?,?,?,?,?)",
                    (lot_id, flow, "QUEUED", t, json.dumps(data or {})))
            for slot, wid in wafers:
                self._x("INSERT INTO wafers VALUES (?,?,?,?,?,?)",
                        (wid, lot_id, slot, "NEEDS_PROCESSING", "{}", t))
        return True

    def lot_state(self, lot_id: str) -> str | None:
        row = self._x("SELECT job_state FROM lots WHERE lot_id=?", (lot_id,)).fetchone()
        return row[0] if row else None

    def set_lot_state(self, lot_id: str, src: str, dst: str) -> None:
        self._x("UPDATE lots SET job_state=? WHERE lot_id=?", (dst, lot_id))
        self._x("INSERT INTO transitions (t, kind, subject, src, dst, reason) "
                "VALUES (?,?,?,?,?,?)", (self.now(), "job", lot_id, src, dst, ""))

    def wafer_rows(self, lot_id: str) -> list[tuple[str, int, str, dict[str, Any]]]:
        """(wafer_id, slot, state, data) of a lot, by slot."""
        rows = self._x("SELECT wafer_id, slot, state, data FROM wafers WHERE lot_id=? "
                       "ORDER BY slot", (lot_id,)).fetchall()
        return [(w, s, st, json.loads(d)) for w, s, st, d in rows]

    def save_wafer(self, wafer_id: str, state: str, data: dict[str, Any]) -> None:
        self._x("UPDATE wafers SET state=?, data=?, updated=? WHERE wafer_id=?",
                (state, json.dumps(data), self.now(), wafer_id))

    def wafer_transition(self, wafer_id: str, src: str, dst: str, reason: str,
                         data: dict[str, Any]) -> None:
        with self.atomic():
            self.save_wafer(wafer_id, dst, data)
            self._x("INSERT INTO transitions (t, kind, subject, src, dst, reason) "
                    "VALUES (?,?,?,?,?,?)", (self.now(), "wafer", wafer_id, src, dst, reason))

    def transitions(self, subject: str) -> list[tuple[str, str, str]]:
        rows = self._x("SELECT src, dst, reason FROM transitions WHERE subject=? ORDER BY id",
                       (subject,))
        return [tuple(r) for r in rows.fetchall()]  # type: ignore[misc]

    # ---- commands ---------------------------------------------------------
    def intent(self, tool: str, command: str, *, wafer_ids: Iterable[str] = (),
               lot_id: str | None = None, args: dict[str, Any] | None = None,
               before: dict[str, Any] | None = None) -> int:
        """Write (and sync) the INTENT row before the command goes to the tool."""
        cur = self._x("INSERT INTO commands (t, tool, command, lot_id, wafer_ids, args, before) "
                      "VALUES (?,?,?,?,?,?,?)",
                      (self.now(), tool, command, lot_id, json.dumps(list(wafer_ids)),
                       json.dumps(args or {}), json.dumps(before or {})))
        return int(cur.lastrowid or 0)

    def outcome(self, intent_id: int, outcome: str, detail: str = "") -> None:
        """The command's OUTCOME: OK, REFUSED, STARTED, NOT_STARTED, UNKNOWN, ..."""
        self._x("UPDATE commands SET outcome=?, outcome_t=?, detail=? WHERE id=?",
                (outcome, self.now(), detail, intent_id))

    def open_intents(self) -> list[Intent]:
        """Commands with an intent and no outcome, oldest first."""
        return [self._intent(r) for r in self._x(
            "SELECT * FROM commands WHERE outcome IS NULL ORDER BY id").fetchall()]

    def get_intent(self, intent_id: int) -> Intent:
        return self._intent(self._x("SELECT * FROM commands WHERE id=?",
                                    (intent_id,)).fetchone())

    def commands(self, tool: str | None = None) -> list[Intent]:
        sql, args = "SELECT * FROM commands ORDER BY id", ()
        if tool:
            sql, args = "SELECT * FROM commands WHERE tool=? ORDER BY id", (tool,)
        return [self._intent(r) for r in self._x(sql, args).fetchall()]

    @staticmethod
    def _intent(r: tuple[Any, ...]) -> Intent:
        return Intent(id=r[0], t=r[1], tool=r[2], command=r[3], lot_id=r[4],
                      wafer_ids=tuple(json.loads(r[5])), args=json.loads(r[6]),
                      before=json.loads(r[7]), outcome=r[8])

    # ---- results, traces, alarms, batches -----------------------------------
    def result(self, wafer_id: str, step: str, data: dict[str, Any]) -> None:
        self._x("INSERT INTO results (t, wafer_id, step, data) VALUES (?,?,?,?)",
                (self.now(), wafer_id, step, json.dumps(data)))

    def results(self, wafer_id: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._x("SELECT step, data FROM results WHERE wafer_id=? ORDER BY id",
                       (wafer_id,)).fetchall()
        return [(s, json.loads(d)) for s, d in rows]

    def trace(self, subject: str, kind: str, data: Any) -> None:
        self._x("INSERT INTO traces (t, subject, kind, data) VALUES (?,?,?,?)",
                (self.now(), subject, kind, json.dumps(data)))

    def traces(self, subject: str) -> list[tuple[str, Any]]:
        rows = self._x("SELECT kind, data FROM traces WHERE subject=? ORDER BY id",
                       (subject,)).fetchall()
        return [(k, json.loads(d)) for k, d in rows]

    def alarm(self, tool: str, kind: str, text: str, lot_id: str | None = None,
              wafer_ids: Iterable[str] = ()) -> int:
        cur = self._x("INSERT INTO alarms (t, tool, kind, text, lot_id, wafer_ids) "
                      "VALUES (?,?,?,?,?,?)",
                      (self.now(), tool, kind, text, lot_id, json.dumps(list(wafer_ids))))
        return int(cur.lastrowid or 0)

    def clear_alarm(self, alarm_id: int) -> None:
        self._x("UPDATE alarms SET cleared_t=? WHERE id=?", (self.now(), alarm_id))

    def alarms(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in  # type: ignore[misc]
                self._x("SELECT tool, kind, text FROM alarms ORDER BY id").fetchall()]

    def allocate_batch(self, tool_seen: int, recipe: str, wafer_ids: Iterable[str]) -> int:
        """A batch number unique in this journal and greater than any the tool reported."""
        row = self._x("SELECT MAX(batch_no) FROM batches").fetchone()
        no = max(int(row[0] or 0), int(tool_seen)) + 1
        self._x("INSERT INTO batches VALUES (?,?,?,?,?)",
                (no, self.now(), recipe, json.dumps(list(wafer_ids)), "ALLOCATED"))
        return no

    def set_batch_state(self, batch_no: int, state: str) -> None:
        self._x("UPDATE batches SET state=? WHERE batch_no=?", (state, batch_no))

    def batch(self, batch_no: int) -> tuple[str, list[str], str] | None:
        row = self._x("SELECT recipe, wafer_ids, state FROM batches WHERE batch_no=?",
                      (batch_no,)).fetchone()
        return (row[0], json.loads(row[1]), row[2]) if row else None
