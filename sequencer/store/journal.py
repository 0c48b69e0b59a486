"""The journal: SQLite (stdlib ``sqlite3``, WAL; its commits synced off the loop, see below).

Written before a command that changes a tool (an INTENT row) and after it (its
OUTCOME), so that after a crash every command in flight is known and can be
reconciled with the tool before anything is sent. Also: lots, wafers (state +
data, the source for ``set_state`` on restart), every state change, results,
traces (oven temperature profile, OES trace), alarms and oven batch numbers.

One connection, used from the event-loop thread only. Times are tool seconds
(the sequencer's scaled clock).

Durability (docs/sequencer.md, "Journal writes and the event loop"): a file journal
commits with ``synchronous=NORMAL`` and its fsyncs run on the ``journal-sync`` thread
(:mod:`sequencer.store.walsync`), so a slow disk does not stall the event loop. An INTENT is
the exception: :meth:`Journal.intent` returns only once it (and every write before it)
is on the disk, so the command it announces can never reach a tool first. Other writes
are durable within ``walsync.GATHER_S`` (20 ms) and one fsync, and before the next intent
or :meth:`Journal.close` returns; :meth:`Journal.flush` waits for them where a caller needs to.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sequencer.store.crashpoint as crashpoint
from sequencer.store.journal_file import (
    SCHEMA,
    Intent,
    JournalError,
    describe_open_error,
    ensure_journal_dir,
    written_time_scale,
)
from sequencer.store.walsync import WalSync, WalSyncError

#: the file's own names are the journal's too (``from sequencer.store.journal import Intent``)
__all__ = ["Intent", "Journal", "JournalError", "ensure_journal_dir", "written_time_scale"]


class Journal:
    """The run's durable record. ``now`` gives tool seconds (defaults to epoch)."""

    def __init__(self, path: str | Path, now: Callable[[], float] = time.time, *,
                 time_scale: float | None = None) -> None:
        """Open (or create) the journal; :class:`JournalError` if it cannot be used.

        ``time_scale``: the tool seconds per wall second ``now`` counts in, kept in the
        file (``meta``) so a reader converts its times without the run's tools.yaml.

        Everything that can fail on a bad file is done here, before a caller
        touches a tool: the directory is created, the file is opened, checked
        (``PRAGMA quick_check``, cheap) and given its tables inside one try.
        """
        self.path = str(path)
        self.now = now
        self._sync: WalSync | None = None
        self._intent_in_tx = False  # an intent inside atomic(): synced at its COMMIT
        if self.path != ":memory:":
            ensure_journal_dir(self.path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: cannot open ({exc}); "
                               "nothing was sent to the tools") from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            if self.path == ":memory:":
                self.db.execute("PRAGMA synchronous=FULL")
            else:  # commits synced on the journal-sync thread (sequencer/store/walsync.py)
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA wal_autocheckpoint=0")
            check = self.db.execute("PRAGMA quick_check").fetchone()
            if check and check[0] != "ok":
                raise sqlite3.DatabaseError(str(check[0]))
            self.db.executescript(SCHEMA)
            if time_scale is not None:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('time_scale', ?)",
                                (float(time_scale),))
            self._probe_write()
        except sqlite3.Error as exc:
            self.db.close()
            raise JournalError(describe_open_error(self.path, exc)) from None
        if self.path != ":memory:":
            self._sync = WalSync(self.path)

    def _probe_write(self) -> None:
        """Write a row and roll it back: a read-only file opens and reads fine, and
        would fail only at the run's first write, after tools were touched."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT INTO transitions (t, kind, subject, src, dst, reason) "
                            "VALUES (0, 'probe', '', '', '', '')")
        finally:
            self.db.execute("ROLLBACK")

    def close(self) -> None:
        """Every write on the disk, the sync thread stopped, the connection closed."""
        try:
            if self._sync is not None:
                self._sync.request()
                self._sync.close()
        finally:
            self.db.close()

    def flush(self) -> None:
        """Block until every write made so far is on the disk (:class:`JournalError` if
        the disk refused): e.g. before answering that a change is recorded."""
        if self._sync is not None and not self.db.in_transaction:
            self._wait(self._sync.request())

    def _wait(self, ticket: int) -> None:
        assert self._sync is not None
        try:
            self._sync.wait(ticket)
        except WalSyncError as exc:
            raise JournalError(str(exc)) from exc

    def _committed(self) -> int:
        """A commit was made: have it synced off this thread; its ticket (0: no sync)."""
        return self._sync.request() if self._sync is not None else 0

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
            self._intent_in_tx = False
            self._x("ROLLBACK")
            raise
        self._x("COMMIT")
        if self._intent_in_tx:
            self._intent_in_tx = False
            self.flush()

    def _x(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        params = tuple(args)
        if crashpoint.ACTIVE:
            crashpoint.before_write(sql, params)  # test hook
        cur = self.db.execute(sql, params)
        if not self.db.in_transaction and not sql.startswith(("SELECT", "BEGIN", "ROLLBACK")):
            self._committed()  # an autocommit write, or an atomic() block's COMMIT
        return cur

    # ---- lots and wafers -------------------------------------------------
    def add_lot(self, lot_id: str, flow: str, wafers: Iterable[tuple[int, str]],
                data: dict[str, Any] | None = None) -> bool:
        """Record a lot and its wafers (NEEDS_PROCESSING). False if the lot was known.

        :class:`JournalError` if a wafer id already belongs to another lot.
        """
        if self._x("SELECT 1 FROM lots WHERE lot_id=?", (lot_id,)).fetchone():
            return False
        wafers = list(wafers)
        self.refuse_foreign_wafers(lot_id, [wid for _, wid in wafers])
        t = self.now()
        with self.atomic():
            self._x("INSERT INTO lots VALUES (?,?,?,?,?)",
                    (lot_id, flow, "QUEUED", t, json.dumps(data or {})))
            for slot, wid in wafers:
                self._x("INSERT INTO wafers VALUES (?,?,?,?,?,?)",
                        (wid, lot_id, slot, "NEEDS_PROCESSING", "{}", t))
        return True

    def wafer_owners(self, wafer_ids: Iterable[str]) -> dict[str, str]:
        """wafer id -> the lot it belongs to in this journal, for the ids it knows."""
        owners: dict[str, str] = {}
        for wid in dict.fromkeys(wafer_ids):
            row = self._x("SELECT lot_id FROM wafers WHERE wafer_id=?", (wid,)).fetchone()
            if row:
                owners[wid] = row[0]
        return owners

    def refuse_foreign_wafers(self, lot_id: str, wafer_ids: Iterable[str]) -> None:
        """:class:`JournalError` naming the wafers of ``lot_id`` that another lot owns."""
        by_lot: dict[str, list[str]] = {}
        for wid, owner in self.wafer_owners(wafer_ids).items():
            if owner != lot_id:
                by_lot.setdefault(owner, []).append(wid)
        if by_lot:
            owned = "; ".join(
                f"wafer id{'s' if len(ids) > 1 else ''} {', '.join(ids)} already "
                f"belong{'' if len(ids) > 1 else 's'} to lot {owner}"
                for owner, ids in by_lot.items())
            raise JournalError(f"lot {lot_id}: {owned} in journal {self.path}; "
                               "use new wafer ids (nothing was sent to the tools)")

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
        return [tuple(r) for r in rows.fetchall()]

    # ---- commands ---------------------------------------------------------
    def intent(self, tool: str, command: str, *, wafer_ids: Iterable[str] = (),
               lot_id: str | None = None, args: dict[str, Any] | None = None,
               before: dict[str, Any] | None = None) -> int:
        """Write the INTENT row and return once it is on the disk: before the command
        goes to the tool (inside :meth:`atomic`, at the block's COMMIT)."""
        cur = self._x("INSERT INTO commands (t, tool, command, lot_id, wafer_ids, args, before) "
                      "VALUES (?,?,?,?,?,?,?)",
                      (self.now(), tool, command, lot_id, json.dumps(list(wafer_ids)),
                       json.dumps(args or {}), json.dumps(before or {})))
        if self.db.in_transaction:
            self._intent_in_tx = True
        else:
            self.flush()
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

    def commands(self, tool: str | None = None, command: str | None = None,
                 wafer_id: str | None = None) -> list[Intent]:
        """Commands in order, of ``tool``, named ``command``, naming ``wafer_id`` (each
        filter in SQL, so a check before each start reads a few rows, not the journal)."""
        quoted = None if wafer_id is None else json.dumps(wafer_id)  # as in wafer_ids
        filters = (("tool=?", tool), ("command=?", command), ("instr(wafer_ids, ?)", quoted))
        where = [sql for sql, value in filters if value is not None]
        args = [value for _, value in filters if value is not None]
        rows = self._x("SELECT * FROM commands" + (" WHERE " + " AND ".join(where) if where
                                                   else "") + " ORDER BY id", tuple(args))
        out = [self._intent(r) for r in rows.fetchall()]
        return out if wafer_id is None else [c for c in out if wafer_id in c.wafer_ids]

    @staticmethod
    def _intent(r: tuple[Any, ...]) -> Intent:
        return Intent(id=r[0], t=r[1], tool=r[2], command=r[3], lot_id=r[4],
                      wafer_ids=tuple(json.loads(r[5])), args=json.loads(r[6]),
                      before=json.loads(r[7]), outcome=r[8], outcome_t=r[9])

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

    def alarm_acked(self, alarm_id: int) -> str | None:
        """Who acknowledged alarm ``alarm_id`` (possibly from another process: ``viaform
        alarms --ack``), or None while it is active."""
        row = self._x("SELECT cleared_t FROM alarms WHERE id=?", (alarm_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            who = self._x("SELECT who FROM alarm_acks WHERE alarm_id=?",
                          (alarm_id,)).fetchone()
        except sqlite3.OperationalError:  # no acknowledgement table: never acked by a person
            who = None
        return str(who[0]) if who else "someone"

    def acked_uncleared(self, tool: str, kind: str) -> int | None:
        """The newest alarm of ``kind`` on ``tool`` that a person acknowledged but whose
        tool clear (a CLEAR_ALARMS command naming it) was never sent: e.g. acknowledged
        after the run that held the tool had ended."""
        row = self._x("SELECT id FROM alarms WHERE tool=? AND kind=? ORDER BY id DESC "
                      "LIMIT 1", (tool, kind)).fetchone()
        if row is None or self.alarm_acked(int(row[0])) is None:
            return None
        aid = int(row[0])
        for c in self.commands(tool):
            if c.command == "CLEAR_ALARMS" and c.args.get("alarm_id") == aid:
                return None
        return aid

    def active_alarm(self, tool: str, kind: str) -> tuple[int, str] | None:
        """The newest unacknowledged alarm of ``kind`` on ``tool``: (id, text)."""
        row = self._x("SELECT id, text FROM alarms WHERE tool=? AND kind=? AND cleared_t IS "
                      "NULL ORDER BY id DESC LIMIT 1", (tool, kind)).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def alarms(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in
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
