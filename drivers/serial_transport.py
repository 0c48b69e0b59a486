"""The etcher's transport: a pyserial URL (``socket://host:port``, a pty, ``/dev/tty*``).

pyserial opens and closes; reads and writes go to the raw socket or fd in chunks (see
:mod:`drivers.transport` for why, measured with pyserial 3.5). A device is opened
exclusive (one process on the serial line; pyserial 3.5 takes the flag for every URL
and acts on it for device paths only).
"""

from __future__ import annotations

import array
import fcntl
import socket
import termios
from typing import Any

import serial
import structlog

from drivers.transport import (
    CommsTimeout,
    ConnectionLost,
    LineTransport,
    set_nodelay,
    socket_peer_gone,
)

log = structlog.get_logger("viaform.drivers")


def _kernel_bytes_waiting(fd: int) -> int:
    """Bytes the kernel holds for reading on ``fd`` (socket, tty or pty)."""
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    return buf[0]


class SerialTransport(LineTransport):
    """pyserial URL: ``socket://host:port``, a pty path or ``/dev/tty*``. Replies end CR LF."""

    def __init__(self, url: str, *, baudrate: int = 9600, timeout_s: float = 2.0,
                 tool: str = "") -> None:
        super().__init__(url, timeout_s=timeout_s, tool=tool)
        self.baudrate = int(baudrate)
        self._ser: Any = None
        self._sock: socket.socket | None = None
        self._rx = bytearray()

    def _has_handle(self) -> bool:
        return self._ser is not None

    def _open_raw(self) -> None:
        self._rx.clear()
        # exclusive: a device path (tty, pty) is flock'ed, so a second opener fails with
        # "Could not exclusively lock port"; socket:// accepts the flag and ignores it.
        self._ser = serial.serial_for_url(self.target, baudrate=self.baudrate,
                                          timeout=self.timeout_s,
                                          write_timeout=self.timeout_s, exclusive=True)
        self._sock = getattr(self._ser, "_socket", None)
        set_nodelay(self._sock)

    def _fd(self) -> Any:
        return self._sock if self._sock is not None else self._ser.fileno()

    def _close_raw(self) -> None:
        ser, sock, self._ser, self._sock = self._ser, self._sock, None, None
        self._rx.clear()
        if ser is None:
            return
        if sock is not None:
            # pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; skip it.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            ser._socket = None
            ser.is_open = False
        else:
            ser.close()

    def _write(self, data: bytes) -> None:
        if self._sock is not None:
            # pyserial's socket:// write() builds a Timeout and selects after every send;
            # a short line fits the (non-blocking) socket's buffer in one send.
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            data = data[sent:]
            if not data:
                return
        self._ser.write(data)  # the rest, with pyserial's write timeout

    def _readline(self, deadline: float) -> bytes:
        end = self._rx.find(b"\n")
        while end < 0:
            if not self._wait_readable(self._fd(), deadline):
                raise CommsTimeout(f"no complete reply within {self.timeout_s} s",
                                   tool=self.tool)
            self._rx += self._read_available()
            end = self._rx.find(b"\n")
        line = bytes(self._rx[: end + 1])
        del self._rx[: end + 1]
        return line

    def _read_available(self) -> bytes:
        """What the kernel holds now (the fd is readable): a chunk, never byte by byte."""
        if self._sock is not None:
            try:
                chunk = self._sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return b""
            if not chunk:
                raise ConnectionLost(f"{self.target} closed the connection", tool=self.tool)
            return chunk
        # A tty: readable with nothing waiting is a hang-up; read(1) lets pyserial say so.
        return self._ser.read(max(1, _kernel_bytes_waiting(self._ser.fileno())))

    def _peer_gone(self) -> bool:
        if self._sock is not None:
            return socket_peer_gone(self._sock, self.tool)
        if self._rx or self._ser.in_waiting:
            self._rx.clear()
            stale = self._ser.read(self._ser.in_waiting)
            log.warning("stale_reply_discarded", tool=self.tool, data=stale[:200])
        return False
