"""Our own TCP line transport: the exposure cell's SOCKET resource, the etcher's terminal server.

Stdlib ``socket`` only (why not pyvisa-py or pyserial's ``socket://``: see
:mod:`drivers.transport` and docs/drivers.md, measured). What it does that a reader
cannot see from the calls:

- ``socket.create_connection`` fails at connect on a refused port (pyvisa-py's
  non-blocking connect did not), and ``TCP_NODELAY`` is set on every connection.
- Reads wait with ``select`` up to the caller's deadline and take what the kernel holds
  in one ``recv``; an empty ``recv`` is EOF, raised at once as ConnectionLost (never a
  spin until the timeout).
- Bytes after the first LF stay buffered for the next read; the buffer is emptied on
  every (re)connect.
"""

from __future__ import annotations

import re
import socket

from drivers.errors import ValidationError
from drivers.transport import (
    CommsTimeout,
    ConnectionLost,
    LineTransport,
    log,
    set_nodelay,
    socket_peer_gone,
)

#: ``TCPIP[board]::host::port::SOCKET`` (VISA's raw-socket resource), case-insensitive.
_VISA_SOCKET = re.compile(r"^TCPIP\d*::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE)
#: pyserial's terminal-server URL, ``socket://host:port`` (no options).
_SOCKET_URL = re.compile(r"^socket://(?P<host>\[[^\]]+\]|[^:/]+):(?P<port>\d+)/?$")


class SocketTransport(LineTransport):
    """One TCP connection, LF-terminated lines out, LF (or CR LF) terminated lines back."""

    def __init__(self, target: str, host: str, port: int, *, timeout_s: float = 2.0,
                 tool: str = "") -> None:
        super().__init__(target, timeout_s=timeout_s, tool=tool)
        self.host = host.strip("[]")
        self.port = int(port)
        self._sock: socket.socket | None = None
        self._rx = bytearray()

    @classmethod
    def from_visa_resource(cls, resource: str, *, timeout_s: float = 2.0,
                           tool: str = "") -> SocketTransport:
        """``TCPIP0::host::port::SOCKET``. Other VISA resources (VXI-11 ``INSTR``, HiSLIP)
        are refused: no tool on this line needs them and none is tested here."""
        match = _VISA_SOCKET.match(resource.strip())
        if match is None:
            raise ValidationError("resource", resource, "TCPIP<n>::<host>::<port>::SOCKET",
                                  tool=tool)
        return cls(resource, match["host"], int(match["port"]), timeout_s=timeout_s, tool=tool)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 2.0, tool: str = "") -> SocketTransport:
        """``socket://host:port`` (the form pyserial takes for a terminal server)."""
        match = _SOCKET_URL.match(url.strip())
        if match is None:
            raise ValidationError("url", url, "socket://<host>:<port>", tool=tool)
        return cls(url, match["host"], int(match["port"]), timeout_s=timeout_s, tool=tool)

    @property
    def socket(self) -> socket.socket | None:
        """The open connection's socket (None when closed); the benchmark toggles Nagle on it."""
        return self._sock

    def _has_handle(self) -> bool:
        return self._sock is not None

    def _open_raw(self) -> None:
        self._rx.clear()
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        set_nodelay(sock)
        sock.settimeout(self.timeout_s)  # bounds a blocking sendall to a tool that stopped reading
        self._sock = sock

    def _close_raw(self) -> None:
        sock, self._sock = self._sock, None
        self._rx.clear()
        if sock is not None:
            sock.close()

    def _write(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)

    def _readline(self, deadline: float) -> bytes:
        sock = self._sock
        assert sock is not None
        rx = self._rx
        end = rx.find(b"\n")
        while end < 0:
            if not self._wait_readable(sock, deadline):
                raise CommsTimeout(f"no complete reply within {self.timeout_s} s",
                                   tool=self.tool)
            try:
                chunk = sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionLost(f"{self.target} closed the connection", tool=self.tool)
            start = len(rx)
            rx += chunk
            end = rx.find(b"\n", start)
        line = bytes(rx[: end + 1])
        del rx[: end + 1]
        return line

    def _peer_gone(self) -> bool:
        assert self._sock is not None
        if self._rx:
            log.warning("stale_reply_discarded", tool=self.tool, data=bytes(self._rx[:200]))
            self._rx.clear()
        return socket_peer_gone(self._sock, self.tool)
