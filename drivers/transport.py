"""Line transports for the SCPI tools: one request line out, at most one reply line back.

This module holds what every implementation shares: the :class:`LineTransport` base
(lazy reconnect, the ``*IDN?`` probe, logging, failure mapping), its errors and the socket
helpers. The implementations live next to it, on public APIs only:

- :class:`drivers.socket_transport.SocketTransport` — our own TCP client (stdlib
  ``socket``), for the exposure cell's ``TCPIP0::host::port::SOCKET`` resource and the
  etcher's terminal server ``socket://host:port``.
- :class:`drivers.serial_transport.SerialTransport` — pyserial's public API, for a pty
  path and ``/dev/tty*`` (the etcher on its serial line).

Why not pyvisa-py / pyserial for TCP (measured, see docs/drivers.md): a query through
pyvisa-py 0.8.1's public API costs ~1.37x a raw socket's round trip (the target is 1.2x);
it opens a refused port "successfully" and spins for the whole timeout when the peer
closes; every fix needed its private session objects.
pyserial's ``socket://`` reads one byte per call and sleeps 0.3 s in ``close()``. A
plain socket does all the manual needs in ~60 lines.

What every implementation keeps: ``TCP_NODELAY`` on TCP (a write followed by a query
would otherwise stall ~40 ms on the delayed ACK); ``connect()`` always probes with
``*IDN?``; a peer that closes is seen as EOF at once (never a spin).

Every failure becomes :class:`~drivers.errors.CommsError` (:class:`CommsTimeout` or
:class:`ConnectionLost` so callers can tell whether a retry can help). After any
failure the connection is closed, so a late reply can never be taken as the answer to
the next command; the next call reconnects (and probes) first.
"""

from __future__ import annotations

import socket
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

import serial
import structlog

from drivers.descriptors import readable
from drivers.errors import CommsError

log = structlog.get_logger("viaform.drivers")

PROBE = "*IDN?"


class CommsTimeout(CommsError):
    """No complete reply line within the timeout (a mute, slow or garbling tool)."""


class ConnectionLost(CommsError):
    """The connection was refused, reset or closed by the peer. A reconnect may help."""


#: Exceptions the stdlib and pyserial raise for transport trouble.
_IO_ERRORS: tuple[type[BaseException], ...] = (OSError, serial.SerialException, UnicodeError)


def set_nodelay(sock: socket.socket | None) -> None:
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


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

    def query(self, line: str, *, check_idle: bool = False) -> str:
        """Write one line and return its reply line, without the terminator.

        No idle check by default (one syscall less per query): a connection that died
        while idle shows as :class:`ConnectionLost` on the read, and queries may be
        retried. A line that also commands the tool (never retried) passes
        ``check_idle=True``, as :meth:`send` does.
        """
        with self._lock:
            reply = self._exchange(line, expect_reply=True, check_idle=check_idle)
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
        except Exception as exc:  # any open failure (refused, unknown host, no device)
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
        return readable(fd, left)

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
    return isinstance(exc, TimeoutError | serial.SerialTimeoutException)


def socket_peer_gone(sock: socket.socket, tool: str) -> bool:
    """Peek an idle socket: EOF or reset → gone; stray bytes → drained and logged."""
    if not readable(sock, 0):
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
