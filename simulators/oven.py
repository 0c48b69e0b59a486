"""CV-25 nitrogen cure oven simulator: the controller (program, interlocks), world port, serving.

The controller as the manual (`/work/shared/tools/cure-oven.md`) describes it;
the plant is :mod:`simulators.oven_model`, the register map
:mod:`simulators.oven_registers`, what the host's reads and writes do
:mod:`simulators.oven_device`, the wire :mod:`simulators.modbus_server`. Every decision
the manual leaves open is in `docs/sim-oven.md`. All state changes happen under
``world.lock`` (an RLock), so Modbus requests, the periodic tick and material handling
never interleave and the world's lock order cannot invert.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from dataclasses import replace

from simulators.clock import ScaledClock
from simulators.faults import Faults
from simulators.modbus_server import ModbusServer
from simulators.oven_device import OvenModbusDevice
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
from simulators.oven_registers import (
    POWER_ON,
    REG_HIGH_LIMIT,
    REG_N2,
    REG_O2_LIMIT,
    REG_UNLOAD,
    RUNS,
    Phase,
    State,
)
from simulators.world import World

PURGE_TIMEOUT_S = 60 * 60.0
BAND_C = 3.0
DEVIATION_C, DEVIATION_S = 15.0, 60.0
N2_LOW_FRACTION, N2_LOW_S = 0.5, 30.0  # flow below half its setpoint for 30 s
CASSETTE_SLOTS = 25
O2_WARMUP_S = 600.0  # (est.) the O2 analyser reads over-range this long after a power cycle
O2_OVER_RANGE = 65535.0  # what register 3 saturates at: "no reading yet" or air


class OvenSim(OvenModbusDevice):
    """The CV-25 oven: controller and plant, Modbus device (the base's ``tables``/``mapped``/
    ``write``) and world ``Port``."""

    def __init__(
        self,
        world: World,
        clock: ScaledClock,
        faults: Faults,
        rng_seed: int | None = None,
        params: OvenParams = DEFAULT_PARAMS,
        name: str = "oven",
    ) -> None:
        self.location = name  # its name on the line: the world's location of its cassette
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
        self.o2_warm_at = -math.inf  # the simulator starts with a warm analyser (docs)
        self._server: ModbusServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        world.register_port(name, self)
        faults.subscribe(self._on_fault)

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

    @property
    def o2_reading(self) -> float:
        """What the controller knows of O2: over-range while the analyser warms up, else ppm."""
        return O2_OVER_RANGE if self.t < self.o2_warm_at else self.phys.o2_ppm

    def alarm_word(self) -> int:
        o2_high = self.o2_reading > self.hr[REG_O2_LIMIT] and (
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
            if self.o2_reading <= self.hr[REG_O2_LIMIT]:
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

    # ------------------------------------------------------------ power cycle
    def _on_fault(self, name: str, on: bool, _params: dict) -> None:
        if name == "power_cycle" and on:
            self.power_cycle()

    def power_cycle(self) -> None:
        """Off and on: the controller forgets its program, the plant and the cassette stay.

        Power-on as the manual has it: holding registers at their power-on values, IDLE,
        batch number 0, no segment, heaters and nitrogen off, the lock released (the door
        stays as it physically is), latches reset (a cause still present trips again).
        The chamber keeps its heat and its gas; the O2 analyser reads 65535 for
        ``O2_WARMUP_S``. The server (subscribed after us) drops the connections.
        """
        with self.world.lock:
            self.tick()  # the plant up to the moment the power goes
            if self.running:
                self._log(f"power lost: batch {self.batch} program lost in {self.state.name}")
            self.hr = dict(POWER_ON)
            self.state = self.resume_to = State.IDLE
            self.segment, self.phase, self.program = None, None, []
            self.soak_left_s = self.purge_s = self.deviation_s = self.n2_low_s = 0.0
            self.batch, self.ended_at, self.lock = 0, None, False
            self.hl_tripped = self.o2_abort = False
            self.sp = self.phys.p.ambient_c
            self.phys.pid.reset()
            self.phys.heater_out = 0.0
            self.o2_warm_at = self.t + O2_WARMUP_S
            self._log("power on: IDLE, batch 0, cassette sensed")

    def _log(self, event: str) -> None:
        for wid in self.cassette:
            self.world.log(wid, self.location, event)

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
