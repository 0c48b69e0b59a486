"""This process's CPU time by thread role, for a benchmark's "where does it go" line.

Linux only (``/proc/self/task/<tid>/stat``): the standard library reads a thread's CPU
only from inside that thread (``time.thread_time``), and the sequencer's threads (tool
workers, the journal's sync thread) are not ours to instrument. A sampler thread reads
every thread's user + system time every ``period_s`` and keeps the last reading of
each, so a thread that ends between two samples loses at most one period; that and
threads not named below show as ``other``. The sampler's own CPU is measured
(``time.thread_time``) and left out of the total.

Roles, by thread name: ``MainThread`` (the event loop: steps, journal writes, policy),
``tool-*`` (each tool's driver calls, ``sequencer.runner.toolworker``), ``journal-sync``
(the journal's fsyncs, ``sequencer.store.walsync``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

TASKS = Path("/proc/self/task")
#: role → the thread name it is, or (ending in ``*``) the prefix its names start with
ROLES = {"event loop": "MainThread", "tool threads": "tool-*", "journal sync": "journal-sync"}


def _role(name: str) -> str:
    for role, pattern in ROLES.items():
        if name == pattern or pattern.endswith("*") and name.startswith(pattern[:-1]):
            return role
    return "other"


class ThreadCpu:
    """``with ThreadCpu() as t: ...``; then ``t.total_s`` (this process, the sampler left
    out) and ``t.by_role`` (seconds per role, ``other`` included). Without ``/proc``:
    ``by_role`` is empty and ``total_s`` is ``time.process_time``'s."""

    def __init__(self, period_s: float = 0.2) -> None:
        self.period_s = period_s
        self.total_s = 0.0
        self.by_role: dict[str, float] = {}
        self._seen: dict[int, tuple[str, float]] = {}  # tid → (role, CPU s)
        self._start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu-sampler", daemon=True)
        self._own_s = 0.0
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        try:
            tids = os.listdir(TASKS)
        except OSError:
            return
        for tid in map(int, tids):
            if tid == self._thread.native_id:
                continue
            try:
                stat = (TASKS / str(tid) / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the thread ended
            cpu = (int(stat[11]) + int(stat[12])) / self._tick  # utime + stime
            self._seen[tid] = (_role(names.get(tid, "")), cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()
        self._own_s = time.thread_time()

    def __enter__(self) -> ThreadCpu:
        self._cpu0 = time.process_time()
        self._thread.start()
        while self._thread.native_id is None:
            time.sleep(0.001)
        self._sample()
        self._start = {tid: cpu for tid, (_, cpu) in self._seen.items()}
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()
        self.total_s = time.process_time() - self._cpu0 - self._own_s
        if not self._seen:
            return
        roles: dict[str, float] = {}
        for tid, (role, cpu) in self._seen.items():
            roles[role] = roles.get(role, 0.0) + cpu - self._start.get(tid, 0.0)
        self.by_role = {role: roles.get(role, 0.0) for role in ROLES}
        self.by_role["other"] = max(0.0, self.total_s - sum(self.by_role.values()))
