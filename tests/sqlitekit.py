"""Reading (and writing) a journal file from a test, the connection closed on the way out.

``with sqlite3.connect(...) as con`` only ends a transaction: the connection stays open
until the cyclic garbage collector finds it (in Python 3.11 a connection is part of a
reference cycle, so the reference count alone never frees it). Tests that poll a journal
piled up hundreds of open descriptors that way, until a driver's ``select()`` in a later
test failed with "filedescriptor out of range" (a descriptor above 1023).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def connected(path: Path | str, *args: Any, **kwargs: Any) -> Iterator[sqlite3.Connection]:
    """``sqlite3.connect(path, …)`` as a transaction (committed, or rolled back on an
    error), closed at the end."""
    con = sqlite3.connect(path, *args, **kwargs)
    try:
        with con:
            yield con
    finally:
        con.close()
