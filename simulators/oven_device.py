"""The CV-25 controller's host side: register images, host writes and the command register.

:class:`OvenModbusDevice` is the base of :class:`simulators.oven.OvenSim` and is what
:class:`simulators.modbus_server.ModbusDevice` asks for (``unit_id``, ``tables``,
``mapped``, ``write``; ``tick`` is the controller's). It reads and changes the controller's
state (``hr``, ``state``, ``lock``, ...) and calls its ``_abort`` and ``_log``; the plant, the
program and the world port are in :mod:`simulators.oven`.
"""

from __future__ import annotations

import math
from typing import Any

from pymodbus.constants import ExcCodes

from simulators.oven_registers import (
    MAPPED,
    NONE16,
    PROGRAM_RANGES,
    REG_BATCH,
    REG_COMMAND,
    REG_HIGH_LIMIT,
    REG_SEGMENTS,
    REG_UNLOAD,
    RESERVED,
    SEGMENT_BASE,
    SENSOR_BREAK_PV,
    START_MARGIN,
    STOPPED,
    Phase,
    State,
    u16,
    u32,
)


class OvenModbusDevice:
    """What a Modbus host sees of the CV-25 and what its writes do (base of ``OvenSim``)."""

    unit_id = 1

    # -------------------------------------------------------------- commands
    def _command(self, code: int) -> ExcCodes | None:
        handler = {1: self._start, 2: self._pause, 3: self._resume, 4: self._abort_cmd,
                   5: self._ack}.get(code)
        if handler is None:
            return ExcCodes.ILLEGAL_VALUE
        return None if handler() else ExcCodes.DEVICE_FAILURE

    def _start(self) -> bool:
        used = [SEGMENT_BASE + 3 * n for n in range(self.hr[REG_SEGMENTS])]
        if (
            self.state not in STOPPED or not self.locked or not self.cassette
            or any(self.hr[a] >= self.hr[REG_HIGH_LIMIT] - START_MARGIN for a in used)
            or self.hl_tripped or not self.sensor_ok  # not in the manual's list: see docs
        ):
            return False
        self.program = [
            (self.hr[a] / 10.0, self.hr[a + 1] / 600.0, self.hr[a + 2] * 60.0) for a in used
        ]
        requested = (self.hr[REG_BATCH] << 16) | self.hr[REG_BATCH + 1]
        self.batch = requested or self.batch + 1  # 0 requested: next number (docs)
        self.state, self.segment, self.phase = State.PURGING, None, None
        self.purge_s, self.ended_at, self.o2_abort = 0.0, None, False
        for wid in self.cassette:
            self.world.wafers[wid].cure_batches.append(self.batch)
            self.world.wafers[wid].ran_on("cure", self.location)
        self._log(f"cure start batch {self.batch}")
        return True

    def _pause(self) -> bool:
        if self.state not in (State.PURGING, State.RUNNING):
            return False
        self.resume_to, self.state = self.state, State.PAUSED
        return True

    def _resume(self) -> bool:
        if self.state != State.PAUSED:
            return False
        self.state = self.resume_to
        return True

    def _abort_cmd(self) -> bool:
        if not self.running:
            return False
        self._abort("aborted by host")
        return True

    def _ack(self) -> bool:
        if self.hl_tripped and self.phys.chamber_c * 10 < self.hr[REG_HIGH_LIMIT]:
            self.hl_tripped = False
        return True

    # --------------------------------------------------------- Modbus device
    def mapped(self, table: str, address: int, count: int) -> bool:
        first, n = MAPPED[table]
        return first <= address and address + count <= first + n

    def write(self, table: str, address: int, values: list[Any]) -> ExcCodes | None:
        with self.world.lock:
            if table == "c":
                return self._write_lock(bool(values[0]))
            return self._write_holding(address, values)

    def _write_lock(self, lock: bool) -> ExcCodes | None:
        if lock and not self.door_closed:
            return ExcCodes.DEVICE_FAILURE  # a bolt cannot lock an open door
        if not lock and (self.running or self.hot):
            return ExcCodes.DEVICE_FAILURE
        self.lock = lock
        return None

    def _write_holding(self, address: int, values: list[int]) -> ExcCodes | None:
        addrs = range(address, address + len(values))
        if REG_COMMAND in addrs:
            if len(values) != 1:
                return ExcCodes.ILLEGAL_VALUE
            code, values[0] = values[0], 0  # write-only: the store keeps reading 0
            return self._command(code)
        for a, v in zip(addrs, values, strict=True):
            lo, hi = PROGRAM_RANGES.get(a, (0, 0xFFFF))
            if not lo <= v <= hi:
                return ExcCodes.ILLEGAL_VALUE
        if any(a in PROGRAM_RANGES for a in addrs) and self.state not in STOPPED:
            return ExcCodes.DEVICE_FAILURE
        for i, a in enumerate(addrs):
            if a in RESERVED:
                values[i] = 0  # reserved: read 0, writes ignored
            else:
                self.hr[a] = values[i]
        return None

    def tables(self) -> dict[str, tuple[int, list[int] | list[bool]]]:
        return {
            "c": (0, [self.lock]),
            "d": (0, [self.door_closed, self.locked, self.contactor, self.hl_tripped,
                      bool(self.cassette)]),
            "h": (100, [0] + [self.hr[a] for a in range(101, 134)]),
            "i": (0, self.input_registers()),
        }

    def input_registers(self) -> list[int]:
        p = self.phys
        pv = SENSOR_BREAK_PV if not self.sensor_ok else u16(p.chamber_c * 10)
        if self.heating:
            wsp = self.sp
        elif self.state == State.COOLING:
            wsp = self.hr[REG_UNLOAD] / 10.0
        else:
            wsp = 0.0  # control loop off
        if self.segment is None:
            soak = 0
        elif self.phase == Phase.SOAK:
            soak = math.ceil(max(0.0, self.soak_left_s))
        else:
            soak = round(self.program[self.segment][2])
        since = int(self.t - self.ended_at) if self.ended_at is not None else 0
        return [
            pv, u16(wsp * 10), round(p.heater_out * 1000), min(0xFFFF, round(self.o2_reading)),
            int(self.state), NONE16 if self.segment is None else self.segment, *u32(soak),
            self.alarm_word(), round(p.n2_slm * 10), *u32(self.batch), u16(p.wafer_c * 10),
            *u32(since), NONE16 if self.phase is None else int(self.phase),
        ]
