"""A tool connection's descriptor must be one ``select()`` can watch (below 1024).

A driver's reads wait with ``select.select`` in its libraries: pyserial's POSIX
``read`` (SCPI over RS-232) and pymodbus's ``ModbusTcpClient.recv`` (the oven); ours
did too, in :mod:`drivers.transport` (SCPI over TCP and ``socket://``). ``select()``
cannot take a descriptor at or above ``FD_SETSIZE`` (1024): Python raises
``ValueError``, which pymodbus reports as a connection closed by the peer. Measured
here (soft limit 20 000): with 1 100 files open, the exposure and etcher drivers
failed with a bare ``ValueError`` and the oven's with "connection lost", on a
simulator that was up.

Our own waits use ``poll`` (:func:`readable`), which has no such bound, so a SCPI link
over TCP (:mod:`drivers.socket_transport`) works at any descriptor. A link whose
library waits with ``select()`` (pyserial: RS-232; pymodbus: the oven) is checked as
soon as it is open (:func:`check_selectable`): a descriptor too high is a
:class:`~drivers.errors.CommsError` that says why, before a byte is sent.

The viaform process itself keeps below the bound by lowering its own soft open-file
limit to 1024 (:func:`cap_open_files`, called by the CLI): then a process out of
descriptors gets "Too many open files" where it opens one, and a tool's connection
always gets one ``select()`` can watch.
"""

from __future__ import annotations

import select
import sys
from typing import Any

from .errors import CommsError

FD_SETSIZE = 1024  # glibc's and macOS's select() bound


def readable(fd: Any, timeout_s: float) -> bool:
    """Is ``fd`` (a descriptor or an object with ``fileno()``) readable within
    ``timeout_s`` (0: now)? ``poll`` where the platform has it (no descriptor bound),
    else ``select``."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(max(0.0, timeout_s) * 1000.0))
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
    return bool(ready)


def check_selectable(fd: int, *, tool: str, target: str) -> None:
    """CommsError if ``fd`` (a just-opened connection's) is above what select() takes."""
    if fd >= FD_SETSIZE and sys.platform != "win32":  # Windows' select takes sockets
        raise CommsError(
            f"cannot use {target}: its connection got descriptor {fd}, and the drivers' "
            f"libraries wait with select(), which takes none above {FD_SETSIZE - 1}; "
            f"lower the open-file limit (ulimit -n {FD_SETSIZE}) or close files",
            tool=tool)


def cap_open_files() -> None:
    """Lower this process's soft open-file limit to ``FD_SETSIZE`` if it is higher (the
    hard limit is left alone). A no-op where ``resource`` does not exist (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > FD_SETSIZE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_SETSIZE, hard))
