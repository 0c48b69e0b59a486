"""A small, strict Modbus client link on top of pymodbus 3.16's *sync* clients.

What it adds to pymodbus:

- Only pymodbus's public client API (constructor, ``connect``, ``close``, the request
  methods); no override. ``open()`` reports the OS's reason (``connection refused``)
  instead of pymodbus's bare ``False`` by opening the endpoint once more itself, on the
  failure path only; it sets TCP_NODELAY; the driver probes the link with a read.
- One ``threading.RLock`` per link; composite operations hold it across requests.
- Every pymodbus/OS failure becomes :class:`~drivers.errors.CommsError`; a
  Modbus exception response becomes :class:`~drivers.errors.ToolRejected` with
  the manual's meaning of the code. A reply of the wrong function code or
  length is a CommsError (garbled), never silently used.
- pymodbus's own retries are off (``retries=0``): a timed-out START must never be
  re-sent behind our back. Queries are retried once here, and only after a
  *lost connection* (reconnect first); a timeout is not retried, so a mute tool
  costs one timeout, not two.
- After a timeout or a garbled reply the connection is closed, so a late reply
  can never be read as the answer to the next request; the next call reconnects.
  Before each request an idle TCP socket is checked for a peer close (the tool
  dropped us), and reopened before anything is sent — so a command after a
  drop goes out on a fresh connection instead of failing.

RTU: pymodbus's sync serial client polls ``in_waiting`` every 4 character
times (≈ 2.1 ms at 19200 baud) and ends a frame after one quiet poll; that
quiet time is close to Modbus's own 3.5-character frame gap, so the polling
is what frames the reply. Measured against the simulator on a pty (no wire
time): 4.6 ms per request, 14 ms per ``status()`` (3 requests), vs 0.18 / 0.47 ms
over TCP. On a real 19200-baud line the wire alone takes ≈ 9 ms for the shortest
request/reply and ≈ 40 ms for a status, so the ≤ 2 polls per reply matter little.
The async client would save those milliseconds on a pty but needs an event-loop
thread per driver; not worth it for a tool polled every few seconds.

On a pty the 8E1 of the manual is opened as 8N1 through the client's ``parity`` argument
(see :func:`_is_pty`); pymodbus itself opens the port exclusive and discards stray input
before each request.

RTU has no transaction id: a reply that arrives after our timeout (a *slow*
tool) can be read as the answer to the next request of the same shape. We
close and reopen the port (flushing input) after a timeout and check function
code and length, which catches most of it; the rest is the protocol's limit.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import serial
import structlog
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from .descriptors import check_selectable, readable
from .errors import CommsError, ToolRejected

# pymodbus logs connection failures at ERROR through stdlib logging; with no
# handler configured Python's last-resort handler would print them on stderr
# (e.g. under the CLI). We report those failures ourselves.
logging.getLogger("pymodbus").addHandler(logging.NullHandler())

log = structlog.get_logger("drivers.modbus")

FC_NAMES = {1: "read coils", 2: "read discrete inputs", 3: "read holding registers",
            4: "read input registers", 5: "write single coil", 6: "write single register",
            16: "write multiple registers"}


@dataclass(frozen=True)
class Endpoint:
    """Where the tool is: TCP ``host:port`` or an RTU serial port (19200 8E1)."""

    transport: str  # "tcp" | "rtu"
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str | None = None
    baudrate: int = 19200
    unit: int = 1
    timeout_s: float = 2.0

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.transport == "tcp" else str(self.serial_port)


Client = ModbusTcpClient | ModbusSerialClient


def _new_client(ep: Endpoint) -> Client:
    """A pymodbus sync client from its public constructor only (retries off, see above)."""
    if ep.transport == "tcp":
        return ModbusTcpClient(ep.host, port=ep.port, timeout=ep.timeout_s, retries=0)
    path = str(ep.serial_port)
    return ModbusSerialClient(path, baudrate=ep.baudrate, bytesize=8,
                              parity="N" if _is_pty(path) else "E", stopbits=1,
                              timeout=ep.timeout_s, retries=0)


def _why_not(ep: Endpoint) -> BaseException | None:
    """pymodbus's ``connect()`` only says False: open the endpoint once more ourselves to
    learn the OS's reason (``connection refused``). Only on the failure path."""
    try:
        if ep.transport == "tcp":
            socket.create_connection((ep.host, ep.port), timeout=ep.timeout_s).close()
        else:
            serial.Serial(str(ep.serial_port), baudrate=ep.baudrate, exclusive=True).close()
    except Exception as exc:  # pyserial raises termios/OSError/SerialException
        return exc
    return None


def _tcp_socket(client: Client) -> socket.socket | None:
    """The TCP client's socket: ``socket``, the plain attribute pymodbus 3.16's own
    ``connected`` reads. Looked up defensively: if a release renames it, TCP_NODELAY and
    the idle peer check are skipped (a write after a drop then fails once) instead of
    crashing."""
    sock = getattr(client, "socket", None) if isinstance(client, ModbusTcpClient) else None
    return sock if isinstance(sock, socket.socket) else None


def _peer_gone(client: Client) -> bool:
    """True if the idle TCP socket has been closed by the peer or holds stale bytes."""
    sock = _tcp_socket(client)
    if sock is None:
        return False
    try:
        return readable(sock, 0)  # an idle Modbus link has nothing to read: EOF or junk
    except (OSError, ValueError):
        return True


def _is_pty(path: str) -> bool:
    """A pseudo-terminal has no parity bit to send. Linux 6.x refuses PARENB on a pty
    (``tcsetattr`` → EINVAL once nothing else changes, i.e. on every open but the first),
    so on a pty the 8E1 of the manual is opened as 8N1: the bytes are the same."""
    return os.path.realpath(path).startswith("/dev/pts/")


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no reply"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class ModbusLink:
    """One connection to one Modbus device, used by one driver instance."""

    def __init__(self, endpoint: Endpoint, *, tool: str) -> None:
        self.endpoint = endpoint
        self.tool = tool
        self.lock = threading.RLock()
        self._client: Client | None = None

    # ------------------------------------------------------------ connection
    def open(self) -> None:
        """Open the transport (no request is sent); CommsError with the OS's reason."""
        with self.lock:
            if self._client is not None and self._client.connected:
                return
            client = _new_client(self.endpoint)
            if not client.connect():
                raise CommsError(f"cannot connect to {self.endpoint}: "
                                 f"{_reason(_why_not(self.endpoint))}", tool=self.tool)
            sock = _tcp_socket(client)
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            handle = sock if sock is not None else getattr(client, "socket", None)
            try:  # pymodbus's recv and pyserial's read wait with select()
                if handle is not None:
                    check_selectable(handle.fileno(), tool=self.tool, target=str(self.endpoint))
            except CommsError:
                client.close()  # type: ignore[no-untyped-call]
                raise
            self._client = client

    def close(self) -> None:
        with self.lock:
            if self._client is not None:
                try:
                    self._client.close()  # type: ignore[no-untyped-call]
                except Exception:  # closing a broken transport must not raise
                    pass
                self._client = None

    @property
    def is_open(self) -> bool:
        return self._client is not None

    # ------------------------------------------------------------ requests
    def read_input(self, address: int, count: int) -> list[int]:
        return list(self._request(4, address, count=count).registers[:count])

    def read_holding(self, address: int, count: int) -> list[int]:
        return list(self._request(3, address, count=count).registers[:count])

    def read_coils(self, address: int, count: int) -> list[bool]:
        return list(self._request(1, address, count=count).bits[:count])

    def read_discrete(self, address: int, count: int) -> list[bool]:
        return list(self._request(2, address, count=count).bits[:count])

    def write_register(self, address: int, value: int, *, what: str = "") -> None:
        self._request(6, address, values=[value], what=what)

    def write_registers(self, address: int, values: list[int] | tuple[int, ...]) -> None:
        self._request(16, address, values=list(values))

    def write_coil(self, address: int, value: bool, *, what: str = "") -> None:
        self._request(5, address, values=[bool(value)], what=what)

    def _call(self, client: Client, fc: int, address: int, count: int,
              values: list[Any]) -> ModbusPDU:
        unit = self.endpoint.unit
        if fc == 1:
            return client.read_coils(address, count=count, device_id=unit)
        if fc == 2:
            return client.read_discrete_inputs(address, count=count, device_id=unit)
        if fc == 3:
            return client.read_holding_registers(address, count=count, device_id=unit)
        if fc == 4:
            return client.read_input_registers(address, count=count, device_id=unit)
        if fc == 5:
            return client.write_coil(address, values[0], device_id=unit)
        if fc == 6:
            return client.write_register(address, values[0], device_id=unit)
        return client.write_registers(address, values, device_id=unit)

    def _request(self, fc: int, address: int, *, count: int = 0,
                 values: list[Any] | None = None, what: str = "") -> ModbusPDU:
        """One request; queries (FC 1–4) are retried once after a lost connection."""
        values = values or []
        attempts = 2 if fc <= 4 else 1
        with self.lock:
            for attempt in range(attempts):
                retry = attempt + 1 < attempts
                try:
                    return self._once(fc, address, count, values, what)
                except _Lost as lost:
                    if not retry:
                        raise lost.error from None
                    log.debug("modbus retry", tool=self.tool, fc=fc, address=address,
                              reason=str(lost.error))
            raise AssertionError("unreachable")

    def _once(self, fc: int, address: int, count: int, values: list[Any],
              what: str) -> ModbusPDU:
        client = self._client
        if client is not None and _peer_gone(client):
            log.debug("modbus reconnect", tool=self.tool, reason="peer closed the idle connection")
            self.close()
            client = None
        if client is None:
            self.open()
            client = self._client
            assert client is not None
        shown = values if fc > 4 else [f"count={count}"]
        t0 = time.perf_counter()

        def done(outcome: str, level: str = "debug", **extra: Any) -> None:
            getattr(log, level)("modbus", tool=self.tool, fc=fc, address=address, values=shown,
                                      duration_ms=round((time.perf_counter() - t0) * 1e3, 2),
                                      outcome=outcome, **extra)

        try:
            reply = self._call(client, fc, address, count, values)
        except (ModbusException, OSError, serial.SerialException, ValueError) as exc:
            # Lost connection, timeout, undecodable frame: close so nothing stale is read later.
            self.close()
            lost = _is_lost(exc)
            text = "connection lost" if lost else (
                f"no valid reply within {self.endpoint.timeout_s:g} s")
            done(f"comms: {text}")
            err = CommsError(f"{FC_NAMES.get(fc, fc)} at {address} on {self.endpoint}: {text}",
                             tool=self.tool)
            if lost:
                raise _Lost(err) from exc
            raise err from exc
        if (isinstance(reply, ExceptionResponse) or reply.isError()) and (
            reply.function_code != fc | 0x80
        ):
            self.close()
            done("comms: garbled reply (exception for another function)")
            raise CommsError(f"{FC_NAMES[fc]} at {address} on {self.endpoint}: garbled reply",
                             tool=self.tool)
        if isinstance(reply, ExceptionResponse) or reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            text = EXC_TEXT.get(code, f"exception {code:02d}")
            done(f"exception {code:02d}", "warning", code=code, text=text)
            raise ToolRejected(code, text, tool=self.tool,
                               command=what or f"FC{fc:02d} @{address}")
        problem = _shape_problem(reply, fc, address, count, values)
        if problem:
            self.close()
            done(f"comms: garbled reply ({problem})")
            raise CommsError(f"{FC_NAMES[fc]} at {address} on {self.endpoint}: garbled reply "
                             f"({problem})", tool=self.tool)
        got: list[int] | None = list(reply.registers[:count]) if fc in (3, 4) else (
            [int(b) for b in reply.bits[:count]] if fc in (1, 2) else None)
        if got is None:
            done("ok")
        else:
            done("ok", reply=got)
        return reply


class _Lost(Exception):
    """Internal: the connection was lost (the one case a query is retried)."""

    def __init__(self, error: CommsError) -> None:
        super().__init__(str(error))
        self.error = error


def _is_lost(exc: BaseException) -> bool:
    """A closed/reset connection (retry after reconnecting), as opposed to a timeout."""
    return isinstance(exc, ConnectionException | ConnectionError)


def _shape_problem(reply: ModbusPDU, fc: int, address: int, count: int,
                   values: list[Any]) -> str | None:
    """Why a non-exception reply does not answer this request (None if it does)."""
    if reply.function_code != fc:
        return f"function code {reply.function_code} for request {fc}"
    if fc in (3, 4) and len(reply.registers) != count:
        return f"{len(reply.registers)} registers for {count} requested"
    if fc in (1, 2) and len(reply.bits) < count:
        return f"{len(reply.bits)} bits for {count} requested"
    if fc in (5, 6, 16) and reply.address != address:
        return f"echo of address {reply.address}"
    if fc == 16 and getattr(reply, "count", len(values)) != len(values):
        return f"echo of count {reply.count}"
    return None


EXC_TEXT: dict[int, str] = {
    1: "illegal function",
    2: "illegal address (an address in the request is unmapped)",
    3: "illegal value (out of range, or register 100 in a multi-register write)",
    4: "device failure (refused in this state, or the command's precondition fails)",
}

__all__ = ["EXC_TEXT", "Endpoint", "ModbusLink"]
