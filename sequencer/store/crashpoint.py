"""A hidden test hook: end the process at the Nth journal write (the crash-point campaign).

Not an operator feature; nothing in the CLI names it. Two environment variables, read
once when this module is first imported:

- ``VIAFORM_CRASH_AT=N``: at the Nth journal write of this process (1-based) the
  process ends with ``os._exit(97)`` BEFORE that write executes: no cleanup, no
  flush, no ``finally``, as a power cut right before the write would leave it.
- ``VIAFORM_CRASH_LOG=FILE``: append one line per journal write,
  ``n<TAB>kind<TAB>table<TAB>detail``, written and closed before the write (and before
  a crash at it), so that a dry run tells a harness how many writes a run makes and of
  which kind. ``detail`` is ``tool command wafer,ids`` for an intent, else empty.

A write is an INSERT, UPDATE, DELETE or REPLACE statement sent through
``Journal._x``; BEGIN, COMMIT, ROLLBACK, SELECT and PRAGMA are not writes and are not
counted. With neither variable set, :data:`ACTIVE` is False and the journal's only
cost is testing that flag.

Kinds (by table and verb): ``intent`` (INSERT INTO commands), ``outcome`` (UPDATE
commands), ``fate`` (wafers, and transitions of a wafer), ``lot`` (lots, and
transitions of a lot's job), ``result``, ``trace``, ``alarm``, ``batch``, ``other``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

CRASH_EXIT_CODE = 97

_WRITE = re.compile(r"^\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?"
                    r"|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)

#: table → kind, for every table but ``commands`` and ``transitions`` (verb / row decides)
_KIND_BY_TABLE = {"wafers": "fate", "lots": "lot", "results": "result", "traces": "trace",
                  "alarms": "alarm", "batches": "batch"}


def _crash_at(raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        return None
    return n if n > 0 else None


CRASH_AT: int | None = _crash_at(os.environ.get("VIAFORM_CRASH_AT"))
CRASH_LOG: str | None = os.environ.get("VIAFORM_CRASH_LOG") or None
#: the journal calls :func:`before_write` only when this is True (checked once, here)
ACTIVE: bool = CRASH_AT is not None or CRASH_LOG is not None

_count = 0


def classify(sql: str, args: Sequence[Any] = ()) -> tuple[str, str, str] | None:
    """(kind, table, detail) of a journal statement, or None if it is not a write."""
    m = _WRITE.match(sql)
    if m is None:
        return None
    table = m.group(1).lower()
    verb = sql.lstrip()[:6].upper()
    if table == "commands":
        if verb == "INSERT":
            tool, command = (str(args[1]), str(args[2])) if len(args) > 2 else ("?", "?")
            wafers = str(args[4]) if len(args) > 4 else ""
            ids = ",".join(re.findall(r'"([^"]+)"', wafers))
            return "intent", table, f"{tool} {command} {ids}".rstrip()
        return ("outcome" if verb == "UPDATE" else "other"), table, ""
    if table == "transitions":
        # INSERT INTO transitions (t, kind, subject, ...): kind "wafer" or "job" (a lot)
        sub = str(args[1]) if len(args) > 1 else "wafer"
        return ("lot" if sub == "job" else "fate"), table, ""
    return _KIND_BY_TABLE.get(table, "other"), table, ""


def before_write(sql: str, args: Sequence[Any] = ()) -> None:
    """Called by ``Journal._x`` before every statement, only when :data:`ACTIVE`."""
    global _count
    what = classify(sql, args)
    if what is None:
        return
    _count += 1
    if CRASH_LOG is not None:
        kind, table, detail = what
        with open(CRASH_LOG, "a", encoding="utf-8") as log:
            log.write(f"{_count}\t{kind}\t{table}\t{detail}\n")
    if CRASH_AT is not None and _count == CRASH_AT:
        os._exit(CRASH_EXIT_CODE)
