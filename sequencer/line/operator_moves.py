"""Material handling on real tools: the operator moves wafers and confirms each move.

The sequencer writes a move request into the journal file and waits for the
operator's confirmation (``viaform wafer moved W01 --to oven``), which may come
from another process: SQLite in WAL mode lets both write the same file. A
request not confirmed within ``timeout_s`` raises :class:`HandlingError`, so
the run holds the wafers with the reason instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import structlog

from sequencer.line.handling import HandlingError

log = structlog.get_logger("viaform.handling")

SCHEMA = """
CREATE TABLE IF NOT EXISTS moves (
    id INTEGER PRIMARY KEY,
    wafer_id TEXT NOT NULL,
    dest TEXT NOT NULL,
    requested_at REAL NOT NULL,
    confirmed_at REAL,
    confirmed_by TEXT
);
CREATE INDEX IF NOT EXISTS moves_open ON moves(wafer_id, confirmed_at);
"""

LOCATIONS = ("stocker", "exposure", "oven", "etcher")  # and any other tool's name


def _connect(path: Path | str) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


class MoveBook:
    """The move requests and confirmations kept in the journal file."""

    def __init__(self, path: Path | str) -> None:
        self.db = _connect(path)

    def close(self) -> None:
        self.db.close()

    def request(self, wafer_ids: list[str], dest: str) -> list[int]:
        """Open a request per wafer (an open request for the same move is reused)."""
        ids = []
        for wid in wafer_ids:
            row = self.db.execute(
                "SELECT id FROM moves WHERE wafer_id=? AND dest=? AND confirmed_at IS NULL",
                (wid, dest),
            ).fetchone()
            if row:
                ids.append(row[0])
                continue
            cur = self.db.execute(
                "INSERT INTO moves(wafer_id, dest, requested_at) VALUES (?, ?, ?)",
                (wid, dest, time.time()),
            )
            ids.append(int(cur.lastrowid or 0))
        return ids

    def pending(self) -> list[tuple[str, str, float]]:
        """Open requests: (wafer id, destination, requested at epoch s), oldest first."""
        return list(self.db.execute(
            "SELECT wafer_id, dest, requested_at FROM moves WHERE confirmed_at IS NULL "
            "ORDER BY requested_at"
        ))

    def confirmed(self, request_ids: list[int]) -> bool:
        marks = ",".join("?" * len(request_ids))
        row = self.db.execute(
            f"SELECT COUNT(*) FROM moves WHERE id IN ({marks}) AND confirmed_at IS NOT NULL",
            request_ids,
        ).fetchone()
        return row[0] == len(request_ids)

    def confirm(self, wafer_ids: list[str], dest: str, who: str) -> None:
        """Confirm moves; all or none. ValueError names any wafer with no such open request."""
        known = tuple(dict.fromkeys((*LOCATIONS, *(d for _, d, _ in self.pending()))))
        if dest not in known:
            raise ValueError(f"unknown destination {dest!r}; choose from {', '.join(known)}")
        missing = [
            wid for wid in wafer_ids
            if not self.db.execute(
                "SELECT 1 FROM moves WHERE wafer_id=? AND dest=? AND confirmed_at IS NULL",
                (wid, dest),
            ).fetchone()
        ]
        if missing:
            open_moves = ", ".join(f"{w}→{d}" for w, d, _ in self.pending()) or "none"
            raise ValueError(
                f"no open request to move {', '.join(missing)} to {dest}; open requests: "
                f"{open_moves}"
            )
        with self.db:
            for wid in wafer_ids:
                self.db.execute(
                    "UPDATE moves SET confirmed_at=?, confirmed_by=? "
                    "WHERE wafer_id=? AND dest=? AND confirmed_at IS NULL",
                    (time.time(), who, wid, dest),
                )


class OperatorHandling:
    """Asks the operator for each move and waits for the confirmation (wall seconds)."""

    def __init__(self, journal_path: Path | str, timeout_s: float = 3600.0,
                 poll_s: float = 1.0) -> None:
        self.book = MoveBook(journal_path)
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    async def move(self, wafer_ids: list[str], to: str) -> None:
        ids = self.book.request(list(wafer_ids), to)
        log.warning(
            "operator: move wafers, then confirm",
            wafers=list(wafer_ids), to=to,
            confirm=f"viaform wafer moved {' '.join(wafer_ids)} --to {to}",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while not self.book.confirmed(ids):
            if loop.time() >= deadline:
                raise HandlingError(
                    f"no operator confirmation within {self.timeout_s:.0f} s that "
                    f"{', '.join(wafer_ids)} were moved to {to}"
                )
            await asyncio.sleep(self.poll_s)

    def close(self) -> None:
        self.book.close()
