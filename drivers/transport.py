"""Line transports for the SCPI tools: one request line out, at most one reply line back.

Two implementations share one base (:class:`LineTransport`):

- :class:`VisaTransport` — pyvisa with the pyvisa-py backend (``@py``), for
  ``TCPIP0::host::port::SOCKET`` (the exposure cell).
- :class:`SerialTransport` — ``serial.serial_for_url``, for ``socket://host:port``,
  a pty path and ``/dev/tty*`` (the etcher).

What a reader cannot see from the calls (all measured with pyvisa-py 0.8.1 and pyserial 3.5):

- Both libraries leave Nagle on, so a write followed by a query stalls ~40 ms on the
  delayed ACK. We set ``TCP_NODELAY`` on the real socket: pyvisa-py's attribute setter is
  broken in 0.8.1, so we reach the session's ``interface``; for pyserial ``socket://`` we
  reach ``_socket``.
- pyvisa-py opens a refused TCP resource "successfully" and a peer that closes turns its
  read into a busy spin for the full timeout. So ``connect()`` always probes with
  ``*IDN?``, and before every read we wait on the socket ourselves and peek for EOF.
- pyserial ``readline()`` reads one byte per call, and ``in_waiting`` of ``socket://``
  is only 0 or 1, so we wait with ``select`` and read what the kernel holds (FIONREAD).
- pyserial's ``socket://`` ``close()`` sleeps 0.3 s; we close its socket ourselves.

Every failure becomes :class:`~drivers.errors.CommsError` (:class:`CommsTimeout` or
:class:`ConnectionLost` so callers can tell whether a retry can help). After any
failure the connection is closed, so a late reply can never be taken as the answer to
the next command; the next call reconnects (and probes) first.
"""

from __future__ import annotations

import array
import errno
import fcntl
import select
import socket
import termios
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

import pyvisa
import pyvisa.errors
import serial
import structlog

from drivers.errors import CommsError

log = structlog.get_logger("viaform.drivers")

PROBE = "*IDN?"


class CommsTimeout(CommsError):
    """No complete reply line within the timeout (a mute, slow or garbling tool)."""


class ConnectionLost(CommsError):
    """The connection was refused, reset or closed by the peer. A reconnect may help."""


#: Exceptions the libraries raise for transport trouble (pyvisa-py also raises bare
#: ``Exception`` from ``open_resource``; that one is caught only around the open).
_IO_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    pyvisa.errors.Error,
    serial.SerialException,
    UnicodeError,
)


def _set_nodelay(sock: socket.socket | None) -> None:
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _kernel_bytes_waiting(fd: int) -> int:
    """Bytes the kernel holds for reading on ``fd`` (socket, tty or pty)."""
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    return buf[0]


class LineTransport(ABC):
    """Send lines, read reply lines; reconnect lazily; map every failure to CommsError.

    Not thread-safe by itself beyond an internal lock: the instrument above holds its own
    lock around a command and its error-queue check.
    """

    #: What we write after each line.
    write_termination = "\n"

    def __init__(self, target: str, *, timeout_s: float = 2.0, tool: str = "") -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.target = target
        self.timeout_s = float(timeout_s)
        self.tool = tool
        self.probe_reply: str | None = None
        #: How many times a connection was (re)opened; tests and diagnostics read it.
        self.connects = 0
        self._open = False
        self._lock = threading.Lock()
        self._log: Any = log

    # ---------------------------------------------------------------- public
    @property
    def is_open(self) -> bool:
        return self._open

    def connect(self) -> str:
        """Open the connection and probe it with ``*IDN?``; return the probe's reply."""
        with self._lock:
            self._close_quietly()
            return self._connect()

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    def send(self, line: str) -> None:
        """Write one line that expects no reply.

        A connection the peer closed while we were idle is noticed (and reopened)
        before the line goes out, so a command is never lost to a stale connection.
        """
        with self._lock:
            self._exchange(line, expect_reply=False, check_idle=True)

    def query(self, line: str) -> str:
        """Write one line and return its reply line, without the terminator.

        No idle check here (one syscall less per query): a connection that died while
        idle shows as :class:`ConnectionLost` on the read, and queries may be retried.
        """
        with self._lock:
            reply = self._exchange(line, expect_reply=True, check_idle=False)
            assert reply is not None
            return reply

    # -------------------------------------------------------------- internals
    def _connect(self) -> str:
        start = time.perf_counter()
        try:
            self._open_raw()
        except CommsError:
            self._close_quietly()
            raise
        except Exception as exc:  # pyvisa-py raises bare Exception("could not connect")
            self._close_quietly()
            raise ConnectionLost(f"cannot open {self.target}: {exc}", tool=self.tool) from exc
        self._open = True
        self.connects += 1
        # Resolve structlog's lazy proxy once per connection (saves ~2 us per line); a
        # logging configuration made later takes effect at the next (re)connect.
        self._log = log.bind()
        deadline = start + self.timeout_s
        try:
            reply = self._roundtrip(PROBE, True, deadline)
            # A late reply to a line sent before a timeout may still arrive (a pty keeps
            # it across a reopen): skip lines until one has the four *IDN? fields.
            while reply is not None and reply.count(",") != 3:
                self._log.warning("stale_reply_discarded", tool=self.tool, data=reply[:200])
                reply = self._roundtrip(None, True, deadline)
        except CommsError as exc:
            self._close_quietly()
            raise type(exc)(f"probe {PROBE} on {self.target} failed: {exc}",
                            tool=self.tool) from exc
        assert reply is not None
        self.probe_reply = reply
        return reply

    def _exchange(self, line: str, *, expect_reply: bool, check_idle: bool) -> str | None:
        """One line out (and one back), logged; reconnects first when closed."""
        if "\n" in line or "\r" in line:
            raise ValueError(f"a line may not hold a line break: {line!r}")
        start = time.perf_counter()
        outcome = "ok"
        reply: str | None = None
        try:
            if check_idle and self._open and self._peer_gone():
                self._close_quietly()
            if not self._open:
                self._connect()
            reply = self._roundtrip(line, expect_reply, deadline=time.perf_counter()
                                    + self.timeout_s)
            return reply
        except CommsTimeout:
            outcome = "timeout"
            self._close_quietly()
            raise
        except CommsError:
            outcome = "comms_error"
            self._close_quietly()
            raise
        finally:
            self._log.debug("scpi", tool=self.tool, command=line, reply=reply,
                            duration_ms=round((time.perf_counter() - start) * 1000, 3),
                            outcome=outcome)

    def _roundtrip(self, line: str | None, expect_reply: bool, deadline: float) -> str | None:
        """Write ``line`` (None: write nothing, only read) and read one reply line."""
        try:
            if line is not None:
                self._write((line + self.write_termination).encode("ascii"))
            if not expect_reply:
                return None
            raw = self._readline(deadline)
        except CommsError:
            raise
        except _IO_ERRORS as exc:
            if _is_timeout(exc):
                raise CommsTimeout(f"{line!r}: no reply within {self.timeout_s} s",
                                   tool=self.tool) from exc
            raise ConnectionLost(f"{line!r}: {type(exc).__name__}: {exc}",
                                 tool=self.tool) from exc
        try:
            return raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise CommsError(f"{line!r}: reply is not ASCII: {raw[:80]!r}", tool=self.tool) from exc

    def _close_quietly(self) -> None:
        if self._open or self._has_handle():
            try:
                self._close_raw()
            except Exception as exc:  # closing a broken handle must never mask the real error
                log.debug("close_failed", tool=self.tool, error=repr(exc))
        self._open = False

    @staticmethod
    def _wait_readable(fd: Any, deadline: float) -> bool:
        left = deadline - time.perf_counter()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        return bool(ready)

    # ------------------------------------------------------ per-implementation
    @abstractmethod
    def _open_raw(self) -> None: ...

    @abstractmethod
    def _close_raw(self) -> None: ...

    @abstractmethod
    def _has_handle(self) -> bool: ...

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _readline(self, deadline: float) -> bytes:
        """Bytes of one reply line (terminator included or stripped)."""

    @abstractmethod
    def _peer_gone(self) -> bool:
        """True when the peer closed the connection while we were idle.

        Stale unsolicited bytes are discarded here (logged), so that the next reply
        read is the reply to the next line.
        """


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | serial.SerialTimeoutException):
        return True
    if isinstance(exc, pyvisa.errors.VisaIOError):
        return exc.error_code == pyvisa.constants.StatusCode.error_timeout
    return False


def _socket_peer_gone(sock: socket.socket, tool: str) -> bool:
    """Peek an idle socket: EOF or reset → gone; stray bytes → drained and logged."""
    ready, _, _ = select.select([sock], [], [], 0)
    if not ready:
        return False
    try:
        data = sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    if not data:
        return True
    sock.recv(len(data), socket.MSG_DONTWAIT)
    log.warning("stale_reply_discarded", tool=tool, data=data[:200])
    return False


# ----------------------------------------------------------------------------- VISA
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
        _set_nodelay(self._sock)
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
        return _socket_peer_gone(self._sock, self.tool)


# --------------------------------------------------------------------------- serial
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
        self._ser = serial.serial_for_url(self.target, baudrate=self.baudrate,
                                          timeout=self.timeout_s,
                                          write_timeout=self.timeout_s)
        self._sock = getattr(self._ser, "_socket", None)
        _set_nodelay(self._sock)

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
            return _socket_peer_gone(self._sock, self.tool)
        if self._rx or self._ser.in_waiting:
            self._rx.clear()
            stale = self._ser.read(self._ser.in_waiting)
            log.warning("stale_reply_discarded", tool=self.tool, data=stale[:200])
        return False
