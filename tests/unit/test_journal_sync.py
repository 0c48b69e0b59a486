"""The journal's fsyncs off the event loop (sequencer/store/walsync.py): an intent is on the
disk before ``intent()`` returns; other writes do not wait for the disk, and are on it
after one sync, before the next intent and at close; a failed sync is reported."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import sequencer.store.walsync as walsync
from sequencer.store.journal import Journal, JournalError

SLOW_S = 0.2


class Disk:
    """``os.fsync`` as ``walsync`` sees it: slowed, recorded (thread, size synced)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0,
                 fail: bool = False) -> None:
        self.syncs: list[tuple[str, int]] = []
        self.delay_s, self.fail = delay_s, fail
        real = os.fsync

        def fsync(fd: int) -> None:
            time.sleep(self.delay_s)
            if self.fail:
                raise OSError(5, "Input/output error")
            real(fd)
            self.syncs.append((threading.current_thread().name, os.fstat(fd).st_size))

        monkeypatch.setattr(walsync.os, "fsync", fsync)

    def synced_size(self) -> int:
        return max((size for _, size in self.syncs), default=0)


def wal_size(db: Path) -> int:
    return os.stat(f"{db}-wal").st_size


def test_an_intent_is_on_the_disk_when_intent_returns(tmp_path, monkeypatch) -> None:
    disk = Disk(monkeypatch, delay_s=SLOW_S)
    db = tmp_path / "j.db"
    j = Journal(db)
    t0 = time.perf_counter()
    iid = j.intent("etcher", "START_ETCH", wafer_ids=["W1"], lot_id="L")
    took = time.perf_counter() - t0
    assert took >= SLOW_S  # it waited for the disk
    assert disk.synced_size() >= wal_size(db)  # the sync covered the row just written
    assert {name for name, _ in disk.syncs} == {"journal-sync"}
    j.close()
    assert Journal(db).open_intents()[0].id == iid


def test_other_writes_do_not_wait_for_a_slow_disk(tmp_path, monkeypatch) -> None:
    disk = Disk(monkeypatch, delay_s=SLOW_S)
    db = tmp_path / "j.db"
    j = Journal(db)
    t0 = time.perf_counter()
    for n in range(20):
        j.result(f"W{n}", "etch", {"removed_um": n})
        j.trace(f"W{n}", "oes", [1, 2, 3])
    assert time.perf_counter() - t0 < SLOW_S  # 40 commits, not one fsync waited for
    size = wal_size(db)
    deadline = time.monotonic() + 10 * SLOW_S
    while disk.synced_size() < size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert disk.synced_size() >= size  # on the disk soon after, without anyone asking
    assert len(disk.syncs) < 40  # commits that came during a sync share the next one
    j.close()


def test_close_leaves_every_write_on_the_disk(tmp_path, monkeypatch) -> None:
    disk = Disk(monkeypatch, delay_s=SLOW_S)
    db = tmp_path / "j.db"
    j = Journal(db)
    j.add_lot("L", "F", [(1, "W1")])
    j.save_wafer("W1", "IN_PROCESS", {"step": "expose"})
    size = wal_size(db)
    j.close()
    assert disk.synced_size() >= size
    assert Journal(db).wafer_rows("L")[0][2] == "IN_PROCESS"


def test_an_intent_inside_atomic_is_synced_at_the_commit(tmp_path, monkeypatch) -> None:
    disk = Disk(monkeypatch)
    db = tmp_path / "j.db"
    j = Journal(db)
    with j.atomic():
        j.intent("oven", "START", wafer_ids=["W1"])
        j.save_wafer("W1", "IN_PROCESS", {})
    assert disk.synced_size() >= wal_size(db)
    j.close()


def test_a_failed_sync_fails_the_next_intent(tmp_path, monkeypatch) -> None:
    disk = Disk(monkeypatch, fail=True)
    j = Journal(tmp_path / "j.db")
    with pytest.raises(JournalError, match="fsync failed"):
        j.intent("etcher", "START_ETCH", wafer_ids=["W1"])
    assert disk.syncs == []
    j.close()


def test_a_burst_of_commits_is_gathered_into_few_syncs_and_an_intent_is_not_kept_waiting(
        tmp_path, monkeypatch) -> None:
    """A fast disk: 40 commits nobody waits for (a batch's wafers saved one by one) share a
    few fsyncs, gathered for up to ``GATHER_S``, yet reach the disk without being asked;
    an intent that follows is synced at once, not after the gathering."""
    monkeypatch.setattr(walsync, "GATHER_S", 1.0)  # longer than the burst by far
    disk = Disk(monkeypatch)
    db = tmp_path / "j.db"
    j = Journal(db)
    for n in range(40):
        j.result(f"W{n}", "etch", {"removed_um": n})
    t0 = time.perf_counter()
    j.intent("etcher", "START_ETCH", wafer_ids=["W1"], lot_id="L")
    assert time.perf_counter() - t0 < 0.5  # the waiting intent cut the gathering short
    assert disk.synced_size() >= wal_size(db)
    assert len(disk.syncs) <= 2, disk.syncs  # the burst and the intent: one sync or two
    for n in range(3):
        j.result(f"X{n}", "etch", {"removed_um": n})
    size = wal_size(db)
    deadline = time.monotonic() + 5.0
    while disk.synced_size() < size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert disk.synced_size() >= size  # gathered, then synced unasked
    j.close()
