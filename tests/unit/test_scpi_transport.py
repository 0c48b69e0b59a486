"""Our TCP line transport over real loopback sockets: what pyvisa-py got wrong, kept right.

A refused port fails at connect (not on the first write), a peer that closes is
ConnectionLost at once (no spin until the timeout), TCP_NODELAY is set, and only the
VISA raw-socket resource form is accepted.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import ValidationError
from drivers.socket_transport import SocketTransport
from drivers.transport import ConnectionLost

IDN = b"VIAFAB,LX-365,SN1,1.0\n"


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a one-connection loopback server running ``handler``; yields its port."""
    listeners: list[socket.socket] = []

    def start(handler: Callable[[socket.socket], None]) -> int:
        srv = socket.create_server(("127.0.0.1", 0))
        listeners.append(srv)

        def run() -> None:
            conn, _ = srv.accept()
            with conn:
                handler(conn)

        threading.Thread(target=run, daemon=True).start()
        return int(srv.getsockname()[1])

    yield start
    for srv in listeners:
        srv.close()


def answer_idn_then(after: Callable[[socket.socket], None]) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        assert conn.recv(100) == b"*IDN?\n"
        conn.sendall(IDN)
        after(conn)
    return handler


def test_a_refused_port_fails_at_connect() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = SocketTransport.from_visa_resource(f"TCPIP0::127.0.0.1::{port}::SOCKET",
                                                   timeout_s=1.0)
    start = time.monotonic()
    with pytest.raises(ConnectionLost, match="cannot open"):
        transport.connect()
    assert time.monotonic() - start < 0.5 and not transport.is_open


def test_a_peer_that_closes_is_connection_lost_at_once(server: Callable[..., int]) -> None:
    def close_after_request(conn: socket.socket) -> None:
        conn.recv(100)  # the query arrives; the tool drops the link without a reply

    port = server(answer_idn_then(close_after_request))
    transport = SocketTransport.from_visa_resource(f"TCPIP0::127.0.0.1::{port}::SOCKET",
                                                   timeout_s=2.0)
    assert transport.connect() == IDN.decode().strip()
    sock = transport.socket
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    start, cpu = time.monotonic(), time.process_time()
    with pytest.raises(ConnectionLost, match="closed the connection"):
        transport.query("EXP:DOSE?")
    assert time.monotonic() - start < 0.5  # pyvisa-py 0.8.1 spun here for the whole 2 s
    assert time.process_time() - cpu < 0.2
    assert not transport.is_open


def test_replies_split_over_segments_and_crlf_are_one_line(server: Callable[..., int]) -> None:
    def split_reply(conn: socket.socket) -> None:
        assert conn.recv(100) == b"PRES:SET?\n"
        conn.sendall(b"20")
        time.sleep(0.02)
        conn.sendall(b"0.0\r\n")
        conn.recv(100)

    port = server(answer_idn_then(split_reply))
    transport = SocketTransport.from_url(f"socket://127.0.0.1:{port}", timeout_s=1.0)
    transport.connect()
    assert transport.query("PRES:SET?") == "200.0"
    transport.close()


@pytest.mark.parametrize("resource", ["TCPIP0::10.0.0.5::inst0::INSTR",
                                      "TCPIP0::10.0.0.5::hislip0::INSTR", "GPIB0::5::INSTR"])
def test_only_raw_socket_resources_are_accepted(resource: str) -> None:
    with pytest.raises(ValidationError, match="SOCKET"):
        SocketTransport.from_visa_resource(resource)
