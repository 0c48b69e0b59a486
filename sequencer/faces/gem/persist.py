"""GEM state and the E30 spool in the journal file: tables ``gem_state`` and ``gem_spool``.

Its own SQLite connection on the journal file (as the audit log has), WAL with
synchronous=FULL: a ``put`` or a spooled message is on the disk when the call returns,
so what the host was told (a report defined, an EC set, a control state) survives a
crash. One lock serialises the dispatcher thread, the sender and the event loop.

The spool keeps the primary messages (S6F11, S5F1) that could not be sent, in order,
as (stream, function, SECS-II body), up to ``limit`` rows; when full, the oldest are
dropped if ``overwrite`` (E30 OverWriteSpool), else new ones are (and counted).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sequencer.faces.gem.context import JSON

SCHEMA = """
CREATE TABLE IF NOT EXISTS gem_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gem_spool (id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL NOT NULL,
    stream INTEGER NOT NULL, function INTEGER NOT NULL, body BLOB NOT NULL);
"""


class GemStore:
    """``GemContext.store``: keyed JSON values, plus the spool. Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction for every write inside (nested uses join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self._db.execute("COMMIT")

    def get(self, key: str) -> JSON | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM gem_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: JSON) -> None:
        text = json.dumps(value)
        with self._lock:
            self._db.execute("INSERT INTO gem_state (key, value) VALUES (?, ?) ON CONFLICT(key) "
                             "DO UPDATE SET value = excluded.value", (key, text))

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM gem_state WHERE key = ?", (key,))

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT key FROM gem_state WHERE key >= ? AND key < ? "
                                    "ORDER BY key", (prefix, prefix + "\uffff")).fetchall()
        return [str(r[0]) for r in rows]

    # ---- the spool ------------------------------------------------------------------------
    def spool(self, stream: int, function: int, body: bytes, limit: int,
              overwrite: bool) -> bool:
        """Keep one message; False if the spool is full and it was not kept."""
        with self.atomic():
            count = self.spool_count()
            if count >= limit:
                if not overwrite:
                    return False
                self._db.execute("DELETE FROM gem_spool WHERE id IN (SELECT id FROM gem_spool "
                                 "ORDER BY id LIMIT ?)", (count - limit + 1,))
            self._db.execute("INSERT INTO gem_spool (t, stream, function, body) "
                             "VALUES (?, ?, ?, ?)", (time.time(), stream, function, body))
        return True

    def spool_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM gem_spool").fetchone()[0])

    def spooled(self, limit: int | None = None) -> list[tuple[int, int, int, bytes]]:
        """The oldest spooled messages as (id, stream, function, body)."""
        sql = "SELECT id, stream, function, body FROM gem_spool ORDER BY id"
        with self._lock:
            rows = self._db.execute(sql + (" LIMIT ?" if limit else ""),
                                    (limit,) if limit else ()).fetchall()
        return [(int(i), int(s), int(f), bytes(b)) for i, s, f, b in rows]

    def unspool(self, ids: list[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM gem_spool WHERE id = ?", [(i,) for i in ids])

    def purge_spool(self) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM gem_spool").rowcount
