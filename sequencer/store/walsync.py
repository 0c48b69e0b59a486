"""The journal's fsyncs, on one thread of their own instead of the event loop's.

The journal's connection commits with ``synchronous=NORMAL`` (in WAL mode: the commit
is written to the ``-wal`` file, not synced) and asks this thread for a sync after
every commit. The thread fsyncs the ``-wal`` file through its own descriptor (an fsync
flushes the file, whichever descriptor names it), which is what ``synchronous=FULL``
did at each commit, and records the highest commit it covers. It also runs the WAL
checkpoints (the journal's connection has ``wal_autocheckpoint=0``), every
``CHECKPOINT_EVERY`` commits, on a connection of its own: a checkpoint syncs the WAL and
the database file.

Commits nobody waits for are gathered: the thread, woken by the first, waits up to
``GATHER_S`` for more (or for a waiter: an INTENT is synced at once) and covers them all
with one fsync. A burst of commits (a batch of 25 wafers saved, a step's phase, outcome
and results) is then one fsync and one wake-up of this thread, not one each; a commit is
on the disk within ``GATHER_S`` plus an fsync.

A commit is durable once :meth:`WalSync.wait` for its ticket returns. Commits reach
the file in order and a WAL's recovery stops at its first missing frame, so a power cut
loses at most a suffix of the commits not yet waited for; a process crash loses none
(they are in the kernel's page cache).
"""

from __future__ import annotations

import os
import sqlite3
import threading

CHECKPOINT_EVERY = 250  # commits (each writes one page or more: SQLite's default is 1000 pages)
GATHER_S = 0.02  # wall s: how long a sync nobody waits for gathers the commits that follow


class WalSyncError(OSError):
    """The journal's file could not be synced: its recent writes may not be durable."""


class WalSync:
    """One ``journal-sync`` thread for the journal at ``path`` (a file, not ``:memory:``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.wal = path + "-wal"
        self._checkpointed = 0  # the ticket the last checkpoint came after
        self._cond = threading.Condition()
        self._requested = 0
        self._durable = 0
        self._closing = False
        self._idle = False  # the thread sleeps until a commit asks for a sync
        self._waiters = 0  # callers blocked in wait(): sync now, gather nothing
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="journal-sync", daemon=True)
        self._thread.start()

    def request(self) -> int:
        """Ask for a sync covering every commit made so far; the ticket to wait for."""
        with self._cond:
            self._requested += 1
            if self._idle:  # else the thread is gathering or syncing: it will see this one
                self._cond.notify_all()
            return self._requested

    def wait(self, ticket: int) -> None:
        """Block until the sync of ``ticket`` is done; :class:`WalSyncError` if it failed."""
        with self._cond:
            self._waiters += 1
            self._cond.notify_all()  # a gathering sync goes at once
            try:
                while self._durable < ticket and self._error is None:
                    self._cond.wait()
            finally:
                self._waiters -= 1
            if self._error is not None:
                raise WalSyncError(f"journal {self.path}: fsync failed ({self._error}); "
                                   "its last writes may not be on the disk") from self._error

    def flush(self) -> None:
        """Every commit made so far durable (blocks)."""
        self.wait(self.request())

    def close(self) -> None:
        """Finish the syncs asked for, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    # ---- the thread ----------------------------------------------------------
    def _run(self) -> None:
        fd: int | None = None
        checkpointer: sqlite3.Connection | None = None
        try:
            while True:
                with self._cond:
                    self._idle = True
                    while self._durable == self._requested and not self._closing:
                        self._cond.wait()
                    self._idle = False
                    if self._durable == self._requested:
                        return
                    self._cond.wait_for(lambda: self._waiters > 0 or self._closing,
                                        timeout=GATHER_S)
                    target = self._requested
                try:
                    fd = self._fsync(fd)
                    if target - self._checkpointed >= CHECKPOINT_EVERY:
                        checkpointer = self._checkpoint(checkpointer)
                        self._checkpointed = target
                except (OSError, sqlite3.Error) as exc:
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                    return
                with self._cond:
                    self._durable = target
                    self._cond.notify_all()
        finally:
            if fd is not None:
                os.close(fd)
            if checkpointer is not None:
                checkpointer.close()

    def _fsync(self, fd: int | None) -> int:
        """fsync the ``-wal`` file, (re)opening it if it is new (after a WAL reset by
        another process's close, for instance); the descriptor used."""
        if fd is not None and os.fstat(fd).st_ino != os.stat(self.wal).st_ino:
            os.close(fd)
            fd = None
        if fd is None:
            fd = os.open(self.wal, os.O_RDONLY)
        os.fsync(fd)
        return fd

    def _checkpoint(self, con: sqlite3.Connection | None) -> sqlite3.Connection:
        """A passive checkpoint (never waits for the journal's writer) on our connection."""
        if con is None:
            con = sqlite3.connect(self.path, isolation_level=None, timeout=0.0)
            con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return con
