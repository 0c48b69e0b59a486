"""Running the daemon's app under uvicorn: on a socket we bind ourselves, stopped gracefully.

``bind_socket`` binds before uvicorn starts (``sockets=[sock]``), so a test can
bind port 0 and read the port back with no race, and a taken port fails with a
clear message. In the main thread uvicorn turns SIGTERM/SIGINT into a graceful
exit: it stops accepting, sse-starlette ends the event streams, in-flight
requests finish, then the app's lifespan shutdown runs ``line.stop()`` (no new
step, the command in flight finishes, the journal is flushed) and the process
exits 0. ``ServerThread`` runs the same thing off the main thread for tests.
The one entry point is ``viaform daemon`` (``sequencer/faces/cli/daemon.py``).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn
from sse_starlette.sse import AppStatus

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_BIND = "127.0.0.1:8750"
GRACEFUL_HTTP_S = 30  # s, in-flight HTTP requests; the line's own stop() is not bounded here


class BindError(ValueError):
    """A --bind value that is not HOST:PORT, or an address that cannot be bound."""


def parse_bind(text: str) -> tuple[str, int]:
    """``127.0.0.1:8750``, ``[::1]:8750``, ``0.0.0.0:8750``, ``:8750`` (loopback)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BindError(f"--bind {text!r}: expected HOST:PORT, e.g. {DEFAULT_BIND}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def bind_socket(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve {host!r}: {exc}") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn, minus one thing: after a graceful stop on SIGTERM/SIGINT, uvicorn re-raises
    the signal with the default handler restored, so the process dies of it (exit -15).
    The daemon has finished cleanly by then and exits 0 instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def make_server(app: Any, log_level: str = "info") -> uvicorn.Server:
    config = uvicorn.Config(app, lifespan="on", log_level=log_level,
                            timeout_graceful_shutdown=GRACEFUL_HTTP_S, access_log=False)
    return _Server(config)


def serve(app: Any, sock: socket.socket, log_level: str = "info") -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (0 after a graceful stop)."""
    server = make_server(app, log_level)
    server.run(sockets=[sock])
    return 0 if server.started else 1


class ServerThread:
    """The app served on 127.0.0.1:0 in a thread (tests). ``url`` once entered."""

    def __init__(self, app: Any, host: str = "127.0.0.1", start_timeout_s: float = 10.0) -> None:
        self.sock = bind_socket(host, 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = make_server(app, log_level="warning")
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="daemon-uvicorn", daemon=True)
        self._start_timeout_s = start_timeout_s

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while (not self.server.started and self._thread.is_alive()
               and time.monotonic() < deadline):
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError("daemon did not start (see the log above)")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        AppStatus.should_exit = True  # off the main thread, nothing else ends SSE streams
        self.server.should_exit = True
        self._thread.join(timeout_s)
        self.sock.close()
        if self._thread.is_alive():
            raise RuntimeError(f"daemon did not stop within {timeout_s} s")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
