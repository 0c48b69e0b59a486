"""Manual tool commands in the journal, so that a wafer's reason can name the person.

A technician's command that changes a tool (``viaform tool TOOL reset|set|raw|…``,
straight to the tool or through the daemon) is recorded in the line's journal as a
``MANUAL <command>`` row with who sent it (outcome OK: it is never reconciled). When a
step on that tool then fails — a reset that aborted a batch the sequencer was
following, a setting changed under a resumed step — :func:`manual_note` puts the person
and the command into the affected wafers' reasons.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sequencer.store.journal import Journal, JournalError

PREFIX = "MANUAL "
#: the commands that begin a wafer's step on a tool: manual commands after one concern it
STEP_STARTS = ("LOAD", "START")


def record_manual(journal_path: Path, time_scale: float, tool: str, command: str,
                  who: str, args: dict[str, Any] | None = None) -> str | None:
    """Record one manual command; None, or a one-line warning if the journal could not be
    written (the command itself was already done at the tool)."""
    if not journal_path.exists():
        return None
    try:
        journal = Journal(journal_path, now=lambda: time.time() * time_scale)
    except JournalError as exc:
        return f"not recorded in the journal: {exc}"
    try:
        iid = journal.intent(tool, PREFIX + command, args={"by": who, **(args or {})})
        journal.outcome(iid, "OK", f"manual command by {who}")
    finally:
        journal.close()
    return None


def manual_note(journal: Journal, tool: str, wafer_ids: Iterable[str], scale: float) -> str:
    """``" (after viaform tool oven reset by bob at 13:02:11)"`` for the manual commands on
    ``tool`` since the step of ``wafer_ids`` began there; "" if there were none."""
    ids = set(wafer_ids)
    since = 0
    cmds = journal.commands(tool)
    for c in cmds:
        if c.command in STEP_STARTS and ids & set(c.wafer_ids):
            since = c.id
    done = [c for c in cmds if c.id > since and c.command.startswith(PREFIX)]
    if not done:
        return ""
    parts = [f"viaform tool {tool} {c.command[len(PREFIX):]} by {c.args.get('by', '?')} at "
             f"{datetime.fromtimestamp(c.t / scale).strftime('%H:%M:%S')}" for c in done]
    return f" (after {'; '.join(parts)})"
