"""The etcher's serial transport: a pty path or ``/dev/tty*`` through pyserial's public API.

pyserial opens, reads, writes and closes; we only wait on its ``fileno()`` with ``select``
and read what ``in_waiting`` reports in one call (its ``readline()`` reads one byte per
call). A device is opened exclusive (``exclusive=True``: a second opener of the same
serial line fails with "Could not exclusively lock port").

A terminal server (``socket://host:port``) is TCP and goes through our own
:class:`~drivers.socket_transport.SocketTransport`; :func:`line_transport` picks.
"""

from __future__ import annotations

import serial

from drivers.descriptors import check_selectable
from drivers.socket_transport import SocketTransport
from drivers.transport import CommsTimeout, LineTransport, log


def line_transport(url: str, *, baudrate: int = 9600, timeout_s: float = 2.0,
                   tool: str = "") -> LineTransport:
    """The transport for a pyserial-style URL: ``socket://`` → TCP, anything else → pyserial."""
    if url.strip().lower().startswith("socket://"):
        return SocketTransport.from_url(url, timeout_s=timeout_s, tool=tool)
    return SerialTransport(url, baudrate=baudrate, timeout_s=timeout_s, tool=tool)


class SerialTransport(LineTransport):
    """A serial port (pty path or ``/dev/tty*``), 8N1. Replies end CR LF."""

    def __init__(self, url: str, *, baudrate: int = 9600, timeout_s: float = 2.0,
                 tool: str = "") -> None:
        if url.strip().lower().startswith("socket://"):
            raise ValueError(f"{url!r}: use SocketTransport (or line_transport) for socket://")
        super().__init__(url, timeout_s=timeout_s, tool=tool)
        self.baudrate = int(baudrate)
        self._ser: serial.Serial | None = None
        self._rx = bytearray()

    def _has_handle(self) -> bool:
        return self._ser is not None

    def _open_raw(self) -> None:
        self._rx.clear()
        self._ser = serial.Serial(self.target, baudrate=self.baudrate, timeout=self.timeout_s,
                                  write_timeout=self.timeout_s, exclusive=True)
        check_selectable(self._ser.fileno(), tool=self.tool, target=self.target)  # read()

    def _close_raw(self) -> None:
        ser, self._ser = self._ser, None
        self._rx.clear()
        if ser is not None:
            ser.close()

    def _write(self, data: bytes) -> None:
        assert self._ser is not None
        self._ser.write(data)  # bounded by write_timeout (SerialTimeoutException)

    def _readline(self, deadline: float) -> bytes:
        ser = self._ser
        assert ser is not None
        rx = self._rx
        end = rx.find(b"\n")
        while end < 0:
            if not self._wait_readable(ser.fileno(), deadline):
                raise CommsTimeout(f"no complete reply within {self.timeout_s} s",
                                   tool=self.tool)
            # Readable with nothing waiting is a hang-up: read(1) lets pyserial raise it.
            start = len(rx)
            rx += ser.read(max(1, ser.in_waiting))
            end = rx.find(b"\n", start)
        line = bytes(rx[: end + 1])
        del rx[: end + 1]
        return line

    def _peer_gone(self) -> bool:
        ser = self._ser
        assert ser is not None
        if self._rx or ser.in_waiting:
            stale = bytes(self._rx) + ser.read(ser.in_waiting)
            self._rx.clear()
            log.warning("stale_reply_discarded", tool=self.tool, data=stale[:200])
        return False
