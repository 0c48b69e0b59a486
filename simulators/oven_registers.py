"""The CV-25 controller's Modbus map as the simulator keeps it: addresses, ranges, power-on values.

Register values are raw (temperatures in 0.1 °C, ramp rates in 0.1 °C/min), as the manual's
table gives them; :class:`State` and :class:`Phase` are the values of input registers 4 and 15.
"""

from __future__ import annotations

import enum


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
START_MARGIN = 150  # every used target below high limit - 15.0 C (register units)
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


def u16(x: float) -> int:
    """Signed value (already scaled) as a 16-bit register, saturating."""
    return int(max(-32768, min(32767, round(x)))) & 0xFFFF


def u32(x: int) -> list[int]:
    x = max(0, min(0xFFFFFFFF, int(x)))
    return [x >> 16, x & 0xFFFF]
