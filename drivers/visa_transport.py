"""The exposure cell's transport: pyvisa-py opens and closes, our code reads and writes.

pyvisa-py (``@py``) opens the ``TCPIP0::host::port::SOCKET`` resource; reads and writes
then go straight to its socket (see :mod:`drivers.transport` for why, measured with
pyvisa-py 0.8.1). One ``ResourceManager`` is shared by every instance.
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

import pyvisa

from drivers.transport import (
    CommsTimeout,
    ConnectionLost,
    LineTransport,
    set_nodelay,
    socket_peer_gone,
)

_rm_lock = threading.Lock()
_rm: pyvisa.ResourceManager | None = None


def _resource_manager() -> pyvisa.ResourceManager:
    global _rm
    with _rm_lock:
        if _rm is None:
            _rm = pyvisa.ResourceManager("@py")
        return _rm


class VisaTransport(LineTransport):
    """pyvisa-py raw socket resource (``TCPIP0::host::port::SOCKET``), LF terminated."""

    def __init__(self, resource: str, *, timeout_s: float = 2.0, tool: str = "") -> None:
        super().__init__(resource, timeout_s=timeout_s, tool=tool)
        self._res: Any = None
        self._sock: socket.socket | None = None
        self._session: Any = None

    def _has_handle(self) -> bool:
        return self._res is not None

    def _open_raw(self) -> None:
        ms = max(1, int(self.timeout_s * 1000))
        rm = _resource_manager()
        with _rm_lock:
            self._res = rm.open_resource(self.target, read_termination="\n",
                                         write_termination=self.write_termination,
                                         timeout=ms, open_timeout=ms)
        self._session = rm.visalib.sessions[self._res.session]
        self._sock = self._session.interface
        if not isinstance(self._sock, socket.socket):
            raise ConnectionLost(f"{self.target}: not a TCPIP SOCKET resource", tool=self.tool)
        # pyvisa-py connects non-blocking and ignores the result: a refused port shows
        # up here as SO_ERROR, so fail now rather than on the first write.
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise ConnectionLost(f"cannot connect to {self.target}: {errno.errorcode.get(err)}",
                                 tool=self.tool)
        set_nodelay(self._sock)
        self._sock.settimeout(self.timeout_s)  # bounds pyvisa-py's blocking send

    def _close_raw(self) -> None:
        res, self._res, self._sock, self._session = self._res, None, None, None
        if res is not None:
            res.close()

    def _write(self, data: bytes) -> None:
        # On the session's socket (blocking, with our timeout): pyvisa-py's write_raw adds
        # ~4 us of layers per line and selects for writability with no timeout at all.
        assert self._sock is not None
        self._sock.sendall(data)

    def _readline(self, deadline: float) -> bytes:
        """Receive into pyvisa-py's own pending buffer and cut the line out of it.

        pyvisa-py's ``read`` busy-spins until the timeout when the peer has closed, and
        costs three attribute look-ups per chunk (it alone made a query ~1.6x a raw
        socket's); reading the session's socket into the session's buffer keeps pyvisa's
        view consistent and sees EOF at once.
        """
        assert self._sock is not None
        pending: bytearray = self._session._pending_buffer
        end = pending.find(b"\n")
        while end < 0:
            if not self._wait_readable(self._sock, deadline):
                raise CommsTimeout(f"no reply within {self.timeout_s} s", tool=self.tool)
            try:
                chunk = self._sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionLost(f"{self.target} closed the connection", tool=self.tool)
            pending += chunk
            end = pending.find(b"\n")
        line = bytes(pending[: end + 1])
        del pending[: end + 1]
        return line

    def _peer_gone(self) -> bool:
        assert self._sock is not None
        return socket_peer_gone(self._sock, self.tool)
