"""Modbus TCP server and Modbus RTU on a pseudo-terminal, both over one register store.

Why not ``pymodbus.server.ModbusTcpServer``: the CV-25 manual asks for things
pymodbus 3.16's server cannot be told to do - exception 01 for every function
code other than 01-06/16 (pymodbus serves 15, 22, 23, 43, 08 ... itself),
exception 02 for *any* unmapped coil/discrete input (a SimDevice bit block is
padded to 16 bits, so coils 1-15 would read as mapped), at most 4 TCP
connections, the comms faults (a reply delayed by whole seconds cannot be done
in pymodbus' synchronous trace hooks), and an RTU server on a pty (its serial
server opens a port by path; the pty's master side is an fd).

So this module is a small PDU layer of our own (MBAP framing, RTU framing with
CRC from :class:`pymodbus.framer.FramerRTU`) in front of the pymodbus 3.16
store the design asks for: a :class:`pymodbus.simulator.SimDevice` (four
separate tables) inside a ``SimCore``. Writes from a host reach the device's
``write`` through the SimDevice ``action`` callback, which validates the whole
request and refuses it with an ``ExcCodes`` member before anything is stored
(so every write is all-or-nothing). Physics is published into the same store
with ``SimCore.async_setValues`` (the call ``server.async_setValues`` wraps).

Request handling order (Modbus spec): function code (01), quantity / length
(03), every address mapped (02), then the device's own checks (03 value,
04 state). Requests run one at a time (nothing awaits inside ``handle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import termios
import tty
from collections.abc import Callable
from typing import Any, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerRTU
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from simulators.faults import Faults

#: function code -> (table, most items one request may address)
READS: dict[int, tuple[str, int]] = {1: ("c", 2000), 2: ("d", 2000), 3: ("h", 125), 4: ("i", 125)}
WRITES: dict[int, str] = {5: "c", 6: "h", 16: "h"}
TABLE_FC = {"c": 1, "d": 2, "h": 3, "i": 4}  # the function code that addresses a table
RTU_GAP_S = 0.02  # wall silence that ends a frame whose length the header does not tell
TCP_UNKNOWN_UNIT = ExcCodes.GATEWAY_NO_RESPONSE  # exception 0B for a unit id other than ours
_DTYPE = {"c": DataType.BITS, "d": DataType.BITS, "h": DataType.REGISTERS, "i": DataType.REGISTERS}


class ModbusDevice(Protocol):
    """What the server needs from a tool (see :class:`simulators.oven.OvenSim`)."""

    unit_id: int

    def tick(self) -> None:
        """Advance the tool to the clock's now."""

    def tables(self) -> dict[str, tuple[int, list[int] | list[bool]]]:
        """Current image per table ('c', 'd', 'h', 'i'): (first address, values)."""

    def mapped(self, table: str, address: int, count: int) -> bool:
        """True if every address in [address, address + count) exists in the table."""

    def write(self, table: str, address: int, values: list[Any]) -> ExcCodes | None:
        """Validate and apply a host write whole, or refuse it (nothing changes).

        May edit ``values`` in place: that is what the store then keeps
        (a write-only command register stores 0).
        """


def _exception(fc: int, code: ExcCodes) -> bytes:
    return bytes((fc | 0x80, int(code)))


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    frame = bytes((unit,)) + pdu
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def rtu_crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and FramerRTU.check_CRC(frame[:-2], int.from_bytes(frame[-2:], "big"))


def rtu_request_length(buf: bytes) -> int | None:
    """Length of the RTU request frame at the start of buf, or None if not known yet."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in READS or fc in (5, 6):
        return 8
    if fc == 16:
        return 9 + buf[6] if len(buf) >= 7 else None
    return None  # unknown function code: the inter-frame gap ends it


class ModbusServer:
    """Serves one :class:`ModbusDevice` on TCP (<= max_connections) and an RTU pty."""

    def __init__(self, device: ModbusDevice, faults: Faults, max_connections: int = 4) -> None:
        self.device = device
        self.faults = faults
        self.max_connections = max_connections
        images = device.tables()
        blocks = tuple(  # SimDevice's non-shared layout: (coils, discrete inputs, holding, input)
            [SimData(address=images[t][0], values=list(images[t][1]), datatype=_DTYPE[t])]
            for t in ("c", "d", "h", "i")
        )
        self.store = SimCore(SimDevice(id=device.unit_id, simdata=blocks, action=self._action))
        self._tcp: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pty: tuple[int, int] | None = None
        self._rtu_buf = b""
        self._rtu_gap: asyncio.TimerHandle | None = None
        self._rtu_queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._rtu_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        faults.subscribe(self._on_fault)

    # ----------------------------------------------------------------- store
    async def _action(
        self, fc: int, _start: int, address: int, _count: int, _regs: list[int], values: Any
    ) -> ExcCodes | None:
        """SimDevice action: host writes (FC 5/6/16) go to the device; publishes pass."""
        if values is None or fc not in WRITES:
            return None
        return self.device.write(WRITES[fc], address, values)

    async def sync(self) -> None:
        """Advance the device to now and publish its image into the store.

        Holding registers too: host writes change them, but so does a power cycle.
        """
        self.device.tick()
        for table, (address, values) in self.device.tables().items():
            await self.store.async_setValues(self.device.unit_id, TABLE_FC[table], address, values)

    # ------------------------------------------------------------------- PDU
    async def handle(self, unit: int, pdu: bytes, *, tcp: bool) -> bytes | None:
        """One request PDU -> reply PDU (None: no reply)."""
        if unit != self.device.unit_id:
            return _exception(pdu[0] if pdu else 0, TCP_UNKNOWN_UNIT) if tcp else None
        if not pdu:
            return None
        fc = pdu[0]
        if fc not in READS and fc not in WRITES:
            return _exception(fc, ExcCodes.ILLEGAL_FUNCTION)
        if fc in READS:
            return await self._read(fc, pdu)
        return await self._write(fc, pdu)

    async def _read(self, fc: int, pdu: bytes) -> bytes:
        table, most = READS[fc]
        if len(pdu) != 5:
            return _exception(fc, ExcCodes.ILLEGAL_VALUE)
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= most:
            return _exception(fc, ExcCodes.ILLEGAL_VALUE)
        if not self.device.mapped(table, address, count):
            return _exception(fc, ExcCodes.ILLEGAL_ADDRESS)
        await self.sync()
        values = await self.store.async_getValues(self.device.unit_id, fc, address, count)
        if isinstance(values, ExcCodes):
            return _exception(fc, values)
        if table in ("c", "d"):
            data = _pack_bits([bool(v) for v in values])
        else:
            data = b"".join(struct.pack(">H", int(v) & 0xFFFF) for v in values)
        return bytes((fc, len(data))) + data

    async def _write(self, fc: int, pdu: bytes) -> bytes:
        table = WRITES[fc]
        if fc == 16:
            if len(pdu) < 6:
                return _exception(fc, ExcCodes.ILLEGAL_VALUE)
            address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
            data = pdu[6:]
            if not 1 <= count <= 123 or nbytes != 2 * count or len(data) != nbytes:
                return _exception(fc, ExcCodes.ILLEGAL_VALUE)
            values: list[Any] = list(struct.unpack(f">{count}H", data))
            echo = pdu[:5]
        else:
            if len(pdu) != 5:
                return _exception(fc, ExcCodes.ILLEGAL_VALUE)
            address, raw = struct.unpack(">HH", pdu[1:5])
            if fc == 5 and raw not in (0x0000, 0xFF00):
                return _exception(fc, ExcCodes.ILLEGAL_VALUE)
            values = [raw == 0xFF00] if fc == 5 else [raw]
            count, echo = 1, pdu
        if not self.device.mapped(table, address, count):
            return _exception(fc, ExcCodes.ILLEGAL_ADDRESS)
        await self.sync()
        rc = await self.store.async_setValues(self.device.unit_id, fc, address, values)
        return _exception(fc, rc) if rc else echo

    # ---------------------------------------------------------------- faults
    def _on_fault(self, name: str, on: bool, _params: dict[str, Any]) -> None:
        if name not in ("drop", "power_cycle") or not on or self._loop is None:
            return
        try:
            here = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            here = False
        if here:  # at once: no request may reach the rebooted device on an old connection
            self._drop_all(power=name == "power_cycle")
        else:
            self._loop.call_soon_threadsafe(self._drop_all, name == "power_cycle")

    def _drop_all(self, power: bool = False) -> None:
        for w in list(self._writers):
            w.close()
        self._rtu_buf = b""  # a serial line cannot be closed: lose what is in flight
        if power:  # frames the old boot received but had not answered die with it
            if self._rtu_gap is not None:
                self._rtu_gap.cancel()
                self._rtu_gap = None
            while not self._rtu_queue.empty():
                self._rtu_queue.get_nowait()

    async def _reply(self, send: Callable[[bytes], None], frame: bytes, header: int) -> None:
        """Send a reply framed as it goes on the wire, honouring slow / garble."""
        if self.faults.is_on("slow"):
            await asyncio.sleep(float(self.faults.param("slow", "delay_s", 1.0)))
        if self.faults.is_on("garble"):
            # keep the framing header, invert the rest: MBAP stays parseable, an RTU CRC fails
            frame = frame[:header] + bytes(b ^ 0xFF for b in frame[header:])
        send(frame)

    # ------------------------------------------------------------------- TCP
    async def start_tcp(self, host: str, port: int) -> tuple[str, int]:
        self._loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._client, host, port)
        sockname = self._tcp.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.max_connections:
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(6)
                tid, pid, length = struct.unpack(">HHH", header)
                if pid != 0 or not 2 <= length <= 254:
                    break  # not Modbus: drop the connection rather than guess the framing
                body = await reader.readexactly(length)
                if writer.is_closing():
                    break  # dropped (drop, power_cycle): what was still buffered is lost
                if self.faults.is_on("mute"):
                    continue
                reply = await self.handle(body[0], body[1:], tcp=True)
                if reply is not None and not writer.is_closing():
                    mbap = struct.pack(">HHHB", tid, 0, len(reply) + 1, body[0])
                    await self._reply(writer.write, mbap + reply, header=7)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    # ------------------------------------------------------------------- RTU
    async def start_rtu(self) -> str:
        """Open a pty pair, serve RTU on the master side; return the slave's path.

        The slave fd stays open here (raw, 19200 baud, 8 data bits) so the line
        exists while no client has it open, and it is flushed before each reply
        so a late client never reads an answer meant for an earlier one. A Linux
        pty carries no parity bit (the kernel clears PARENB), and Debian/Fedora
        glibc's tcsetattr reports EINVAL when a client's request would change
        only that bit - which pymodbus' serial client does right after opening
        (timeout 0). So clients open the simulated line as 8N1; the bytes on it
        (RTU frames, CRC, unit id) are exactly those of the 8E1 line.
        """
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = termios.B19200
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(master, False)
        self._pty = (master, slave)
        self._loop.add_reader(master, self._rtu_readable)
        self._rtu_task = asyncio.create_task(self._rtu_worker())
        return os.ttyname(slave)

    def _rtu_readable(self) -> None:
        assert self._pty is not None
        try:
            data = os.read(self._pty[0], 4096)
        except (BlockingIOError, OSError):
            return
        self._rtu_buf += data
        while (n := rtu_request_length(self._rtu_buf)) is not None and len(self._rtu_buf) >= n:
            frame = self._rtu_buf[:n]
            if not rtu_crc_ok(frame):
                break  # garbage: the gap timer throws it away
            self._rtu_buf = self._rtu_buf[n:]
            self._rtu_queue.put_nowait(frame)
        if self._rtu_gap is not None:
            self._rtu_gap.cancel()
            self._rtu_gap = None
        if self._rtu_buf and self._loop is not None:
            self._rtu_gap = self._loop.call_later(RTU_GAP_S, self._rtu_silence)

    def _rtu_silence(self) -> None:
        """Line silent: what is buffered is one frame (unknown function code) or noise."""
        frame, self._rtu_buf, self._rtu_gap = self._rtu_buf, b"", None
        if rtu_crc_ok(frame):
            self._rtu_queue.put_nowait(frame)

    async def _rtu_worker(self) -> None:
        while True:
            frame = await self._rtu_queue.get()
            if self.faults.is_on("mute") or self._pty is None:
                continue
            reply = await self.handle(frame[0], frame[1:-2], tcp=False)
            if reply is not None and self._pty is not None:
                await self._reply(self._rtu_send, rtu_frame(frame[0], reply), header=1)

    def _rtu_send(self, frame: bytes) -> None:
        if self._pty is None:
            return
        with contextlib.suppress(OSError):
            termios.tcflush(self._pty[1], termios.TCIFLUSH)
            os.write(self._pty[0], frame)

    # ------------------------------------------------------------------ stop
    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            self._drop_all()
            await self._tcp.wait_closed()
            self._tcp = None
        if self._rtu_task is not None:
            self._rtu_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rtu_task
            self._rtu_task = None
        if self._rtu_gap is not None:
            self._rtu_gap.cancel()
        if self._pty is not None:
            master, slave = self._pty
            self._pty = None
            if self._loop is not None:
                self._loop.remove_reader(master)
            os.close(master)
            os.close(slave)
        with contextlib.suppress(ValueError):
            self.faults.unsubscribe(self._on_fault)
