"""The HSMS-SS passive port (SEMI E37 / E37.1) under secsgem's protocol: one host session.

secsgem 0.3's own server connection is replaced here (``HsmsSettings.create_connection``
is its seam) because, measured with 0.3.0, it:

- binds its own IPv4 socket (a bind error surfaces on a thread, after start-up), and
  ``disable()`` never returns once a connection was accepted (it waits on a flag only
  the accept loop resets);
- closes the listen socket once a host is connected, so a second host gets a TCP
  refusal instead of E37's Select.rsp "communication already active";
- sets no TCP_NODELAY (about 40 ms per back-to-back message on loopback); here it is
  set, and TCP_QUICKACK after each read, so a host that has no TCP_NODELAY itself is not
  held by our delayed ACKs either;
- hands raw bytes to a parser that waits, without a timeout, for as many bytes as a
  length field says: an oversized or garbage length stalls the session for ever, and
  an unknown PType/SType raises inside its receiver. T7 and T8 are not enforced.

``PassiveServer`` owns a listen socket the daemon bound before starting (so a taken port
is one line at start-up), accepts only ``allow_hosts`` peers (others: logged, closed at
once), serves one session, answers a second connection's Select.req with status 1 and
closes it, and frames every message itself before secsgem sees it:

- length < 10: not HSMS: the session is closed (a byte stream cannot be resynchronised);
- length > ``max_message_bytes``: S9F11 (data too long) with the header, the body is
  read and discarded as it comes (never buffered);
- PType ≠ 0: Reject.req reason 1; an unknown SType: Reject.req reason 2;
- a data message for another session id (device id): S9F1;
- a partial message with no byte for T8: the session is closed (E37 §7.10);
- no Select.req within T7 of the connect: the session is closed.

``GemProtocol`` writes each message on the sending thread, and adds three fixes to
secsgem's HSMS protocol: a received data message is
no longer decoded before dispatch (an unknown S/F raised there and was dropped without
the S9F3/S9F5 E5 asks for: the handler answers those); the dispatcher thread secsgem
starts on every connect is stopped on disconnect (0.3.0 leaks one per reconnect); and a
send waiting for its reply is woken at the disconnect with no reply, instead of after T3,
so the sender spools it at once (the host may have got it: E30 spooling is at least once).
"""

from __future__ import annotations

import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import secsgem.common  # type: ignore[import-untyped]
import secsgem.hsms  # type: ignore[import-untyped]
import structlog
from secsgem.hsms.connection_state_machine import (  # type: ignore[import-untyped]
    ConnectionState,
)

log = structlog.get_logger("viaform.gem")
HEADER = struct.Struct(">HBBBBL")  # session, stream|W, function, ptype, stype, system
KNOWN_STYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 9})
SELECT_REQ, SELECT_RSP, REJECT_REQ = 1, 2, 7
TICK_S = 0.1  # the reader's select timeout: how soon a stop, T7 or T8 is noticed
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def select_rsp(system: int, status: int) -> bytes:
    """A Select.rsp frame (E37 §8.3.3: status in header byte 3; 1 = already active)."""
    return struct.pack(">L", 10) + HEADER.pack(0xFFFF, 0, status, 0, SELECT_RSP, system)


def reject_req(header: bytes, reason: int) -> bytes:
    """A Reject.req frame for ``header`` (byte 2: its PType if reason 1, else its SType)."""
    session, _, _, ptype, stype, system = HEADER.unpack(header)
    return struct.pack(">L", 10) + HEADER.pack(0xFFFF, ptype if reason == 1 else stype,
                                               reason, 0, REJECT_REQ, system)


class GemHsmsSettings(secsgem.hsms.HsmsSettings):
    """Passive HSMS on a socket bound by the daemon, with viaform's connection."""

    def __init__(self, listen: socket.socket, allow_hosts: Iterable[str] | None,
                 max_message_bytes: int, **kwargs: Any) -> None:
        host, port = listen.getsockname()[:2]
        super().__init__(connect_mode=secsgem.hsms.HsmsConnectMode.PASSIVE, address=host,
                         port=port, device_type=secsgem.common.DeviceType.EQUIPMENT,
                         **kwargs)
        self.listen = listen
        self.allow_hosts = frozenset(allow_hosts) if allow_hosts is not None else None
        self.max_message_bytes = max_message_bytes

    def create_connection(self) -> PassiveServer:
        return PassiveServer(self)

    def create_protocol(self) -> GemProtocol:
        return GemProtocol(self)


class GemProtocol(secsgem.hsms.HsmsProtocol):
    """secsgem's HSMS protocol, with the two fixes of the module docstring."""

    def enable(self) -> None:
        conn = self._connection
        conn.selected = lambda: self.connection_state.current == ConnectionState.CONNECTED_SELECTED
        conn.next_system = self.get_next_system_counter
        super().enable()

    def post(self, function: Any) -> Callable[[float], Any] | None:
        """Write a primary now; the returned callable waits (up to its argument, seconds)
        for the reply and returns it, or None. None if the write failed. secsgem's
        ``send_and_waitfor_response`` cut in two, so the sender need not wait between
        messages (its private ``_get_queue_for_system``/``_create_message_for_function``)."""
        system_id = self.get_next_system_counter()
        replies = self._get_queue_for_system(system_id)
        message = self._create_message_for_function(function, system_id)
        if not self.send_message(message):
            self._remove_queue(system_id)
            return None

        def wait(timeout: float) -> Any:
            try:
                return replies.get(True, timeout)
            except queue.Empty:
                return None
            finally:
                self._remove_queue(system_id)
        return wait

    def send_message(self, message: Any) -> bool:
        """Write the message on the caller's thread (the connection serialises writes):
        secsgem queues it for its receiver thread to write, one more thread hop per
        message (about a millisecond on a busy 2-core PC)."""
        return all(self._connection.send_data(block.encode()) for block in message.blocks)

    def _on_disconnected(self, data: dict[str, Any]) -> None:
        super()._on_disconnected(data)
        dispatcher = self._thread  # secsgem's ProtocolDispatcher: stop its second thread
        dispatcher._stop_dispatcher_thread = True
        dispatcher._dispatcher_thread_trigger.set()
        for waiting in list(self._response_queues.values()):  # no reply will come: wake
            waiting.put_nowait(None)  # the senders now (not after T3), they spool

    def _on_connection_message_received(self, source: object, message: Any) -> None:
        if message.header.s_type.value > 0:
            super()._on_connection_message_received(source, message)
            return
        if self._connection_state.current != ConnectionState.CONNECTED_SELECTED:
            log.warning("gem: data message while not selected: rejected")
            self.send_reject_rsp(message.header.system, message.header.s_type, 4)
            return
        queue = self._response_queues.get(message.header.system)
        if queue is not None:
            queue.put_nowait(message)
        else:
            self.events.fire("message_received", {"connection": self, "message": message})


class PassiveServer(secsgem.common.Connection):
    """One HSMS-SS session at a time on ``settings.listen``; see the module docstring."""

    def __init__(self, settings: GemHsmsSettings) -> None:
        super().__init__(settings)
        self._s = settings
        self.selected: Callable[[], bool] = lambda: True
        self.next_system: Callable[[], int] = lambda: 0
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sessions = 0  # sessions accepted so far (tests, status)
        self._closing = threading.Event()  # the session's reader is closing it
        self._idle = threading.Event()  # no session
        self._idle.set()
        self.peer: str | None = None

    # ---- secsgem's Connection interface -----------------------------------------------
    def enable(self) -> None:
        self._stop.clear()
        self._spawn(self._accept_loop, "gem-hsms-accept")

    def disable(self) -> None:
        """Stop accepting, close the session (its reader fires the disconnect), join."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(5.0)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._s.listen.close()

    def send_data(self, data: bytes) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            with self._send_lock:
                sock.sendall(data)
            return True
        except OSError as exc:
            log.warning("gem: send failed (%s)", exc)
            return False

    # ---- accepting ----------------------------------------------------------------------
    def _spawn(self, fn: Callable[..., None], name: str, *args: Any) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        t = threading.Thread(target=fn, args=args, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        listen = self._s.listen
        listen.settimeout(TICK_S)
        while not self._stop.is_set():
            try:
                sock, addr = listen.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by disable()
            peer = str(addr[0])
            if self._s.allow_hosts is not None and peer not in self._s.allow_hosts:
                log.warning("gem: connection from %s refused: not in gem.allow_hosts", peer)
                sock.close()
                continue
            if self._sock is not None and self._closing.is_set():
                self._idle.wait(2.0)  # the last session is closing: let it finish first
            if self._sock is not None:
                self._spawn(self._refuse_second, "gem-hsms-second", sock, peer)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.settimeout(self._s.timeouts.t8)  # bounds a send to a peer that stopped reading
            self._sock, self.peer = sock, peer
            self._idle.clear()
            self.sessions += 1
            self._connected = True
            log.info("gem: host %s connected", peer)
            self.on_connected({"source": self})
            self._spawn(self._read_loop, "gem-hsms-reader", sock)

    def _refuse_second(self, sock: socket.socket, peer: str) -> None:
        """E37: a Select.req while a session is active is answered with status 1."""
        log.warning("gem: second connection from %s refused: a host session is active", peer)
        try:
            sock.settimeout(self._s.timeouts.t7)
            data = b""
            while len(data) < 14:
                chunk = sock.recv(14 - len(data))
                if not chunk:
                    return
                data += chunk
            if struct.unpack(">L", data[:4])[0] == 10 and data[9] == SELECT_REQ:
                sock.sendall(select_rsp(HEADER.unpack(data[4:14])[5], 1))
        except OSError:
            pass
        finally:
            sock.close()

    # ---- one session ----------------------------------------------------------------------
    def _read_loop(self, sock: socket.socket) -> None:
        try:
            self._frames(sock)
        except Exception:
            log.exception("gem: session reader failed")
        self._closing.set()
        self._disconnecting = True
        try:
            self.on_disconnecting({"source": self})
        except Exception:
            log.exception("gem: disconnecting handler failed")
        self._disconnecting = False
        sock.close()
        self._connected = False
        log.info("gem: host %s disconnected", self.peer)
        try:
            self.on_disconnected({"source": self})
        except Exception:
            log.exception("gem: disconnected handler failed")
        self._sock = None  # only now may the next session start
        self._closing.clear()
        self._idle.set()

    def _frames(self, sock: socket.socket) -> None:
        buf = bytearray()
        skip = 0  # bytes of an oversized message still to discard
        connected_at = last_rx = time.monotonic()
        t = self._s.timeouts
        while not self._stop.is_set():
            ready = select.select([sock], [], [], TICK_S)[0]
            now = time.monotonic()
            if ready:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    return
                if not data:
                    return
                self._quickack(sock)
                last_rx = now
                if skip:
                    taken = min(skip, len(data))
                    skip -= taken
                    data = data[taken:]
                buf += data
            elif (buf or skip) and now - last_rx > t.t8:
                log.warning("gem: T8 (%.1f s) passed inside a message: session closed", t.t8)
                return
            if not self.selected() and now - connected_at > t.t7:
                log.warning("gem: T7 (%.1f s) passed with no Select.req: session closed", t.t7)
                return
            while len(buf) >= 4 and not skip:
                length = struct.unpack(">L", buf[:4])[0]
                if length < 10:
                    log.warning("gem: message length %d < 10 (not HSMS): session closed",
                                length)
                    return
                if length > self._s.max_message_bytes:
                    if len(buf) < 14:
                        break
                    self._too_long(bytes(buf[4:14]), length)
                    skip = length - 10 - min(length - 10, len(buf) - 14)
                    del buf[:4 + length - skip]
                    continue
                if len(buf) < 4 + length:
                    break
                frame = bytes(buf[:4 + length])
                del buf[:4 + length]
                self._frame(frame)

    @staticmethod
    def _quickack(sock: socket.socket) -> None:
        """ACK at once (Linux resets TCP_QUICKACK after each ACK: set it per read). A host
        without TCP_NODELAY holds its next small message (an S6F12) until our ACK; with
        delayed ACKs that is up to 40 ms per event report."""
        if QUICKACK is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                pass

    def _frame(self, frame: bytes) -> None:
        header = frame[4:14]
        session, stream, _, ptype, stype, _ = HEADER.unpack(header)
        if ptype != 0:
            log.warning("gem: PType %d not supported: Reject.req", ptype)
            self.send_data(reject_req(header, 1))
        elif stype not in KNOWN_STYPES:
            log.warning("gem: SType %d not supported: Reject.req", stype)
            self.send_data(reject_req(header, 2))
        elif stype == 0 and session != self._s.session_id and self.selected():
            log.warning("gem: data message for device id %d: S9F1", session)
            self._s9(1, header)
        else:
            self.on_data({"source": self, "data": frame})

    def _too_long(self, header: bytes, length: int) -> None:
        log.warning("gem: message of %d bytes > %d: S9F11, discarded", length,
                    self._s.max_message_bytes)
        if HEADER.unpack(header)[4] == 0:
            self._s9(11, header)

    def _s9(self, function: int, mhead: bytes) -> None:
        """An S9 error report (E5 §9: MHEAD = the offending message's 10-byte header)."""
        body = self._s.streams_functions.function(9, function)(mhead).encode()
        head = HEADER.pack(self._s.session_id, 9, function, 0, 0, self.next_system())
        self.send_data(struct.pack(">L", 10 + len(body)) + head + body)
