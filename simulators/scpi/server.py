"""Serve one SCPI instrument over TCP (up to 4 connections) and a pseudo-terminal.

Every connection addresses the same instrument; lines run whole, one at a
time, in arrival order. The communication faults (drop, mute, garble, slow)
act here, so they behave the same on both SCPI tools; so does the transport's part of a
power cycle (every TCP connection closed, work in flight lost, the pty's partial line
discarded; the pty device itself stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty

import structlog

from ..faults import Faults
from .instrument import ScpiInstrument

log = structlog.get_logger("viaform.sim")

MAX_CONNECTIONS = 4
MAX_LINE = 4096


def garble(reply: bytes) -> bytes:
    """A reply mangled the way a noisy line mangles it: same length, wrong bytes."""
    body = bytes((b ^ 0x5A) % 94 + 33 for b in reply.rstrip(b"\r\n"))  # printable, never CR/LF
    return body + reply[len(reply.rstrip(b"\r\n")) :]


class ScpiServer:
    """The transports of one instrument; ``terminator`` ends each reply line."""

    def __init__(
        self,
        instrument: ScpiInstrument,
        faults: Faults,
        *,
        terminator: str = "\n",
        tick_wall_s: float = 0.01,
        name: str = "scpi",
    ) -> None:
        self.instrument = instrument
        self.faults = faults
        self.terminator = terminator.encode()
        self.tick_wall_s = tick_wall_s
        self.name = name
        self._lock = asyncio.Lock()
        self._tcp: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self._pty: tuple[int, int, str] | None = None
        self._pty_buffer = b""
        self._ticker: asyncio.Task | None = None
        faults.subscribe(self._on_fault)

    # ----------------------------------------------------------- lifecycle
    async def start_tcp(self, host: str, port: int) -> tuple[str, int]:
        self._tcp = await asyncio.start_server(self._serve_client, host, port)
        self._ensure_ticker()
        sock = self._tcp.sockets[0]
        return sock.getsockname()[0], sock.getsockname()[1]

    async def start_pty(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)  # a pty starts cooked: no echo, no line editing
        os.set_blocking(master, False)
        path = os.ttyname(slave)
        self._pty = (master, slave, path)  # keep the slave open so the master never sees EOF
        asyncio.get_running_loop().add_reader(master, self._pty_readable)
        self._ensure_ticker()
        return path

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self._tcp:
            self._tcp.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._pty:
            master, slave, _ = self._pty
            asyncio.get_running_loop().remove_reader(master)
            os.close(master)
            os.close(slave)
            self._pty = None
        if self._tcp:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)

    def _ensure_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_wall_s)
            if not self._lock.locked():
                try:
                    self.instrument.tick()
                except Exception:  # a model bug must not kill the server
                    log.exception("sim.tick_failed", tool=self.name)

    def _on_fault(self, name: str, on: bool, params: dict) -> None:
        if name in ("drop", "power_cycle") and on:
            for writer in list(self._writers):
                writer.transport.abort()
        if name == "power_cycle" and on:
            # the instrument has already rebooted (it subscribed first): a line half run, or
            # waiting in *OPC?, dies with the old boot instead of finishing on the new one
            try:
                me = asyncio.current_task()
            except RuntimeError:  # called outside the event loop's thread
                me = None
            for task in list(self._tasks):
                if task is not me:
                    task.cancel()
            self._pty_buffer = b""

    # ----------------------------------------------------------- lines
    async def _answer(self, line: bytes) -> bytes | None:
        """Run one received line; return the bytes to send back (None: nothing)."""
        text = line.decode("ascii", errors="replace").rstrip("\r")
        if not text.strip() or self.faults.is_on("mute"):
            return None
        async with self._lock:
            reply = await self.instrument.execute(text)
            if reply is None:
                return None
            if self.faults.is_on("slow"):
                await asyncio.sleep(float(self.faults.param("slow", "delay_s", 1.0)))
        data = reply.encode("ascii", errors="replace") + self.terminator
        return garble(data) if self.faults.is_on("garble") else data

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        task = asyncio.current_task()
        if task:
            self._tasks.add(task)
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket

            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    break  # EOF mid-line: the host went away
                out = await self._answer(line[:-1][:MAX_LINE])
                if out is not None:
                    writer.write(out)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ValueError:
            pass  # readline's "chunk is longer than limit": a line over 64 KiB closes the link
        except asyncio.CancelledError:
            pass  # server stopping; returning quietly keeps asyncio's stream callback silent
        finally:
            self._writers.discard(writer)
            if task:
                self._tasks.discard(task)
            writer.close()

    def _pty_readable(self) -> None:
        assert self._pty is not None
        try:
            chunk = os.read(self._pty[0], 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        self._pty_buffer += chunk
        while b"\n" in self._pty_buffer:
            line, self._pty_buffer = self._pty_buffer.split(b"\n", 1)
            task = asyncio.get_running_loop().create_task(self._pty_line(line))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if len(self._pty_buffer) > MAX_LINE:
            self._pty_buffer = b""

    async def _pty_line(self, line: bytes) -> None:
        out = await self._answer(line)
        if out is not None and self._pty is not None:
            with contextlib.suppress(OSError):
                os.write(self._pty[0], out)
