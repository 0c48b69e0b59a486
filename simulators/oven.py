"""CV-25 nitrogen cure oven simulator: register map, program, interlocks, world port.

The controller as the manual (`/work/shared/tools/cure-oven.md`) describes it;
the plant is :mod:`simulators.oven_model`, the wire is
:mod:`simulators.modbus_server`. Every decision the manual leaves open is in
`docs/sim-oven.md`. All state changes happen under ``world.lock`` (an RLock),
so Modbus requests, the periodic tick and material handling never interleave
and the world's lock order cannot invert.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import random
from dataclasses import replace
from typing import Any

from pymodbus.constants import ExcCodes

from simulators.clock import ScaledClock
from simulators.faults import Faults
from simulators.modbus_server import ModbusServer
from simulators.oven_model import (
    AIR_O2_PPM,
    DEFAULT_PARAMS,
    MAX_STEP_S,
    Inputs,
    OvenParams,
    OvenPhysics,
    cure_step,
    ramp_setpoint,
)
from simulators.world import World


class State(enum.IntEnum):
    IDLE = 0
    PURGING = 1
    RUNNING = 2
    PAUSED = 3
    COOLING = 4
    COMPLETE = 5
    ABORTED = 6


class Phase(enum.IntEnum):
    RAMP = 0
    BAND = 1
    SOAK = 2


NONE16 = 0xFFFF
STOPPED = (State.IDLE, State.COMPLETE, State.ABORTED)  # no program runs; program regs writable
RUNS = (State.PURGING, State.RUNNING, State.PAUSED, State.COOLING)
PURGE_TIMEOUT_S = 60 * 60.0
BAND_C = 3.0
DEVIATION_C, DEVIATION_S = 15.0, 60.0
N2_LOW_FRACTION, N2_LOW_S = 0.5, 30.0  # flow below half its setpoint for 30 s
START_MARGIN = 150  # every used target below high limit - 15.0 C (register units)
CASSETTE_SLOTS = 25
SENSOR_BREAK_PV = 0x7FFF  # what register 0 reads with the thermocouple open

REG_COMMAND, REG_SEGMENTS, REG_O2_LIMIT, REG_N2, REG_HIGH_LIMIT, REG_UNLOAD = range(100, 106)
REG_BATCH = 106  # and 107, high word first
RESERVED = (108, 109)
SEGMENT_BASE, SEGMENT_COUNT = 110, 8
SEGMENT_FIELDS = ((200, 4000), (1, 200), (0, 1440))  # target C*10, rate C/min*10, soak min

#: program register -> (low, high), as the manual's table gives them
PROGRAM_RANGES: dict[int, tuple[int, int]] = {
    REG_SEGMENTS: (1, 8),
    REG_O2_LIMIT: (5, 1000),
    REG_N2: (0, 1000),
    REG_HIGH_LIMIT: (500, 4000),
    REG_UNLOAD: (500, 1500),
    REG_BATCH: (0, 0xFFFF),
    REG_BATCH + 1: (0, 0xFFFF),
    **{
        SEGMENT_BASE + 3 * n + k: rng
        for n in range(SEGMENT_COUNT)
        for k, rng in enumerate(SEGMENT_FIELDS)
    },
}
POWER_ON_SEGMENTS = [(1500, 50, 30), (3200, 30, 60)] + [(250, 10, 0)] * 6
POWER_ON: dict[int, int] = {
    REG_SEGMENTS: 2, REG_O2_LIMIT: 20, REG_N2: 500, REG_HIGH_LIMIT: 3500, REG_UNLOAD: 1000,
    REG_BATCH: 0, REG_BATCH + 1: 0, 108: 0, 109: 0,
    **{SEGMENT_BASE + 3 * n + k: v for n, seg in enumerate(POWER_ON_SEGMENTS)
       for k, v in enumerate(seg)},
}
#: table -> (first address, count): everything else answers exception 02
MAPPED = {"c": (0, 1), "d": (0, 5), "h": (100, 34), "i": (0, 16)}


def _u16(x: float) -> int:
    """Signed value (already scaled) as a 16-bit register, saturating."""
    return int(max(-32768, min(32767, round(x)))) & 0xFFFF


def _u32(x: int) -> list[int]:
    x = max(0, min(0xFFFFFFFF, int(x)))
    return [x >> 16, x & 0xFFFF]


class OvenSim:
    """The CV-25 oven: Modbus device (``tables``/``mapped``/``write``) and world ``Port``."""

    unit_id = 1

    def __init__(
        self,
        world: World,
        clock: ScaledClock,
        faults: Faults,
        rng_seed: int | None = None,
        params: OvenParams = DEFAULT_PARAMS,
    ) -> None:
        self.world, self.clock, self.faults = world, clock, faults
        ambient = random.Random(rng_seed).uniform(20.0, 25.0)  # manual: ambient 20-25 C
        self.phys = OvenPhysics(replace(params, ambient_c=ambient))
        self.hr: dict[int, int] = dict(POWER_ON)
        self.state = State.IDLE
        self.resume_to = State.IDLE
        self.segment: int | None = None
        self.phase: Phase | None = None
        self.soak_left_s = 0.0
        self.sp = ambient  # working setpoint, C
        self.program: list[tuple[float, float, float]] = []  # (target C, rate C/s, soak s)
        self.purge_s = 0.0
        self.batch = 0
        self.ended_at: float | None = None
        self.door_closed = True
        self.lock = False
        self.cassette: list[str] = []
        self.alpha: dict[str, float] = {}
        self.hl_tripped = False  # high-limit controller latch (alarm bit 0, DI 3)
        self.o2_abort = False  # ABORTED by the purge timeout: O2 high stays reported
        self.deviation_s = 0.0
        self.n2_low_s = 0.0
        self.t = clock.now()
        self._server: ModbusServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        world.register_port("oven", self)

    # ------------------------------------------------------------ conditions
    @property
    def sensor_ok(self) -> bool:
        return not self.faults.is_on("sensor_break")

    @property
    def running(self) -> bool:
        return self.state in RUNS

    @property
    def heating(self) -> bool:
        """The control loop drives the heaters (RUNNING, or PAUSED out of RUNNING)."""
        return self.state == State.RUNNING or (
            self.state == State.PAUSED and self.resume_to == State.RUNNING
        )

    @property
    def contactor(self) -> bool:
        return self.heating and not self.hl_tripped and self.sensor_ok

    @property
    def hot(self) -> bool:
        """Above the unload temperature; with the sensor broken the controller cannot tell."""
        return not self.sensor_ok or self.phys.chamber_c * 10 > self.hr[REG_UNLOAD]

    @property
    def n2_on(self) -> bool:
        return self.running or (self.state == State.ABORTED and self.hot)

    @property
    def locked(self) -> bool:
        return self.lock and self.door_closed

    def alarm_word(self) -> int:
        o2_high = self.phys.o2_ppm > self.hr[REG_O2_LIMIT] and (
            self.heating or self.state == State.COOLING
            or (self.state == State.ABORTED and self.o2_abort)
        )
        bits = (
            self.hl_tripped,
            not self.door_closed,
            o2_high,
            self.n2_low_s >= N2_LOW_S,
            not self.sensor_ok,
            self.deviation_s >= DEVIATION_S,
        )
        return sum(1 << i for i, b in enumerate(bits) if b)

    # ------------------------------------------------------------- time step
    def tick(self) -> None:
        """Advance to the clock's now in fixed substeps; copy cure into the world."""
        with self.world.lock:
            now = self.clock.now()
            while self.t < now - 1e-9:
                dt = min(MAX_STEP_S, now - self.t)
                self.t += dt
                self._substep(dt)
            for wid, a in self.alpha.items():
                self.world.wafers[wid].degree_of_cure = a

    def _substep(self, dt: float) -> None:
        if self.door_closed == self.faults.is_on("door_open"):
            self.door_closed = not self.door_closed
            if not self.door_closed:
                self._door_opened()
        if self.running and not self.sensor_ok:
            self._abort("sensor break")
        f = self.faults
        self.phys.step(dt, Inputs(
            setpoint_c=self.sp if self.heating and self.sensor_ok else None,
            contactor_closed=self.contactor,
            heater_stuck_on=f.is_on("over_temperature"),
            n2_on=self.n2_on,
            n2_setpoint_slm=self.hr[REG_N2] / 10.0,
            n2_supply_ok=not f.is_on("n2_flow_low"),
            door_open=not self.door_closed,
            leak_fault=f.is_on("o2_purge_fail"),
        ))
        if self.phys.chamber_c * 10 >= self.hr[REG_HIGH_LIMIT] and not self.hl_tripped:
            self.hl_tripped = True
            if self.running:
                self._abort("over-temperature, high limit tripped")
        self._program(dt)
        self._monitor(dt)
        for wid, a in self.alpha.items():
            self.alpha[wid] = cure_step(a, self.phys.wafer_c, dt, self.phys.p)

    def _program(self, dt: float) -> None:
        if self.state == State.PURGING:
            self.purge_s += dt
            if self.phys.o2_ppm <= self.hr[REG_O2_LIMIT]:
                self.state = State.RUNNING
                self.sp = self.phys.chamber_c  # the first ramp starts from where the chamber is
                self._enter_segment(0)
            elif self.purge_s >= PURGE_TIMEOUT_S:
                self.o2_abort = True
                self._abort("O2 purge timeout")
        elif self.state == State.RUNNING and self.segment is not None:
            target, rate, _soak = self.program[self.segment]
            if self.phase == Phase.RAMP:
                self.sp = ramp_setpoint(self.sp, target, rate, dt)
                if self.sp == target:
                    self.phase = Phase.BAND
            if self.phase == Phase.BAND:
                if abs(self.phys.chamber_c - target) <= BAND_C:
                    self.phase = Phase.SOAK
            elif self.phase == Phase.SOAK:
                self.soak_left_s -= dt
                if self.soak_left_s <= 0:
                    self._enter_segment(self.segment + 1)
        elif self.state == State.COOLING and not self.hot:
            self.state = State.COMPLETE
            self.ended_at = self.t
            self.lock = False  # manual: COMPLETE releases the door lock
            self._log(f"cure complete batch {self.batch}")

    def _enter_segment(self, n: int) -> None:
        if n >= len(self.program):
            self.state, self.segment, self.phase = State.COOLING, None, None
            return
        self.segment, self.phase = n, Phase.RAMP
        self.soak_left_s = self.program[n][2]

    def _monitor(self, dt: float) -> None:
        soaking = self.phase == Phase.SOAK and self.heating and self.sensor_ok
        off = abs(self.phys.chamber_c - self.sp) > DEVIATION_C
        self.deviation_s = self.deviation_s + dt if soaking and off else 0.0
        n2_sp = self.hr[REG_N2] / 10.0
        low = self.n2_on and n2_sp > 0 and self.phys.n2_slm < N2_LOW_FRACTION * n2_sp
        self.n2_low_s = self.n2_low_s + dt if low else 0.0

    def _abort(self, reason: str) -> None:
        self.state, self.segment, self.phase = State.ABORTED, None, None
        self.ended_at = self.t
        self.deviation_s = 0.0
        self._log(f"cure aborted batch {self.batch}: {reason}")

    def _door_opened(self) -> None:
        """The door swung open: a running program aborts; an ended one goes IDLE."""
        if self.running:
            self._abort("door opened")
        elif self.state in (State.COMPLETE, State.ABORTED):
            self.state = State.IDLE
            self.o2_abort = False

    def _log(self, event: str) -> None:
        for wid in self.cassette:
            self.world.log(wid, "oven", event)

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
        pv = SENSOR_BREAK_PV if not self.sensor_ok else _u16(p.chamber_c * 10)
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
            pv, _u16(wsp * 10), round(p.heater_out * 1000), min(0xFFFF, round(p.o2_ppm)),
            int(self.state), NONE16 if self.segment is None else self.segment, *_u32(soak),
            self.alarm_word(), round(p.n2_slm * 10), *_u32(self.batch), _u16(p.wafer_c * 10),
            *_u32(since), NONE16 if self.phase is None else int(self.phase),
        ]

    # ------------------------------------------------------------ world Port
    def _handling_refused(self) -> str | None:
        if self.running:
            return f"a program is running ({self.state.name})"
        if self.lock:
            return "door locked"
        if self.hot:
            return "chamber above the unload temperature"
        return None

    def can_place(self, wafer_ids: list[str]) -> str | None:
        self.tick()
        with self.world.lock:
            if len(self.cassette) + len(wafer_ids) > CASSETTE_SLOTS:
                return f"the cassette holds {CASSETTE_SLOTS} wafers"
            return self._handling_refused()

    def can_take(self, wafer_ids: list[str]) -> str | None:
        self.tick()
        with self.world.lock:
            if any(w not in self.cassette for w in wafer_ids):
                return "not in the oven"
            return self._handling_refused()

    def _door_cycle(self) -> None:
        """Operator/robot opens the door, moves wafers, closes it (unless held open).

        Counts as a door opening even when a door_open fault already holds it
        open: unloading an ABORTED batch leaves the oven IDLE either way.
        """
        self.door_closed = False
        self._door_opened()
        self.phys.o2_ppm = AIR_O2_PPM  # air came in
        self.door_closed = not self.faults.is_on("door_open")

    def placed(self, wafer_ids: list[str]) -> None:
        with self.world.lock:
            self._door_cycle()
            for wid in wafer_ids:
                self.cassette.append(wid)
                self.alpha[wid] = self.world.wafers[wid].degree_of_cure

    def taken(self, wafer_ids: list[str]) -> None:
        with self.world.lock:
            self._door_cycle()
            for wid in wafer_ids:
                self.world.wafers[wid].degree_of_cure = self.alpha.pop(wid)
                self.cassette.remove(wid)

    # ------------------------------------------------------------- lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0, rtu: bool = True) -> dict:
        """Serve Modbus TCP (and RTU on a pty); returns {"tcp": (host, port), "rtu": path}."""
        self._server = ModbusServer(self, self.faults)
        tcp = await self._server.start_tcp(host, port)
        path = await self._server.start_rtu() if rtu else None
        self._ticker = asyncio.create_task(self._tick_loop())
        return {"tcp": tcp, "rtu": path}

    async def _tick_loop(self) -> None:
        assert self._server is not None
        while True:
            await self._server.sync()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
