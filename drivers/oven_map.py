"""The CV-25 cure oven's Modbus map as data, and the codecs between it and the typed values.

The typed values themselves (states, alarms, program, status) are in
:mod:`drivers.oven_types`.

Every register the manual names is one :class:`Register` row: where it is
(kind + 0-based protocol address), how many 16-bit words (u32 = high word
first), its scale (engineering value × scale = raw), whether it is signed,
its range *in engineering units* and whether it can be read or written. The
driver and the CLI only ever go through these rows, so a value is checked
against the manual's range in exactly one place (:meth:`Register.check`).

Values are rounded to the register's resolution (0.1 °C, 0.1 °C/min,
0.1 slm) after the range check, which is done on the value as given:
``20.0`` is a legal segment target, ``19.96`` is not (it would silently become
``20.0`` otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from .errors import ValidationError
from .oven_types import (
    OvenAlarm,
    OvenProgram,
    OvenReadings,
    OvenState,
    OvenStatus,
    Segment,
    SegmentPhase,
)

TOOL = "oven"
MAX_SEGMENTS = 8
#: The controller's START check: every used segment target below high limit − this.
START_MARGIN_C = 15.0


class Kind(Enum):
    """Which Modbus table a row lives in (the function codes follow from it)."""

    INPUT = "input"  # FC 04
    HOLDING = "holding"  # FC 03 / 06 / 16
    COIL = "coil"  # FC 01 / 05
    DISCRETE = "discrete"  # FC 02


class Access(Enum):
    READ = "read-only"
    WRITE = "write-only"
    READ_WRITE = "read-write"


@dataclass(frozen=True)
class Register:
    """One row of the map. ``lo``/``hi`` are in engineering units (None: the raw type's range)."""

    name: str
    kind: Kind
    address: int
    unit: str = ""
    words: int = 1
    scale: int = 1
    signed: bool = False
    lo: float | None = None
    hi: float | None = None
    access: Access = Access.READ
    doc: str = ""
    is_bool: bool = False

    # ---- what a reader of the table needs ----
    @property
    def read_only(self) -> bool:
        return self.access is Access.READ

    @property
    def is_int(self) -> bool:
        """Integral engineering value (scale 1): counts, ppm, minutes, batch numbers."""
        return self.scale == 1 and not self.is_bool

    @property
    def raw_lo(self) -> int:
        bits = 16 * self.words
        return -(1 << (bits - 1)) if self.signed else 0

    @property
    def raw_hi(self) -> int:
        bits = 16 * self.words
        return (1 << (bits - 1)) - 1 if self.signed else (1 << bits) - 1

    @property
    def eng_lo(self) -> float:
        return self.lo if self.lo is not None else self.raw_lo / self.scale

    @property
    def eng_hi(self) -> float:
        return self.hi if self.hi is not None else self.raw_hi / self.scale

    @property
    def allowed(self) -> str:
        """The allowed values in words, for error messages: ``20.0 – 400.0 °C``."""
        if self.is_bool:
            return "0 or 1 (true/false)"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self._fmt(self.eng_lo)} – {self._fmt(self.eng_hi)}{unit}"

    def _fmt(self, v: float) -> str:
        return f"{int(v)}" if self.is_int else f"{v:.{_decimals(self.scale)}f}"

    # ---- checking and conversion ----
    def check(self, value: object) -> float | int | bool:
        """The value as it will be sent, or ValidationError naming this row and its range."""
        if self.is_bool:
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise ValidationError(self.name, value, self.allowed, tool=TOOL)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(self.name, value, f"a number, {self.allowed}", tool=TOOL)
        if not math.isfinite(value) or not self.eng_lo <= value <= self.eng_hi:
            raise ValidationError(self.name, value, self.allowed, tool=TOOL)
        if self.is_int:
            if value != int(value):
                allowed = f"a whole number, {self.allowed}"
                raise ValidationError(self.name, value, allowed, tool=TOOL)
            return int(value)
        return round(float(value) * self.scale) / self.scale

    def validate(self, value: object) -> float | int | bool:
        """Like :meth:`check`, also for text typed by a person (``"150.5"``, ``"on"``,
        ``"9.0E1"``), and refusing read-only rows. Same call as the SCPI ``Setting``'s."""
        if self.read_only:
            raise ValidationError(self.name, value, f"nothing: {self.name} is read-only",
                                  tool=TOOL)
        return self.from_text(value) if isinstance(value, str) else self.check(value)

    def from_text(self, text: str) -> float | int | bool:
        """A value typed by a person, checked."""
        t = text.strip().lower()
        if self.is_bool and t in _BOOL_WORDS:
            return self.check(_BOOL_WORDS[t])
        try:
            number: float | int = int(t, 10)
        except ValueError:
            try:
                number = float(t)
            except ValueError:
                raise ValidationError(self.name, text, self.allowed, tool=TOOL) from None
        return self.check(number)

    def encode(self, value: object) -> tuple[int, ...]:
        """Checked value → register words (u16 each, high word first)."""
        v = self.check(value)
        raw = int(v) if self.is_bool else round(v * self.scale)
        if raw < 0:
            raw += 1 << (16 * self.words)
        return tuple((raw >> (16 * i)) & 0xFFFF for i in reversed(range(self.words)))

    def decode(self, words: tuple[int, ...] | list[int]) -> float | int | bool:
        """Register words → engineering value (no range check: the tool reports what it has)."""
        if len(words) != self.words:
            raise ValueError(f"{self.name}: expected {self.words} word(s), got {len(words)}")
        raw = 0
        for w in words:
            raw = (raw << 16) | (w & 0xFFFF)
        if self.signed and raw >= 1 << (16 * self.words - 1):
            raw -= 1 << (16 * self.words)
        if self.is_bool:
            return bool(raw)
        return raw if self.is_int else raw / self.scale


_BOOL_WORDS = {"1": True, "0": False, "on": True, "off": False, "true": True, "false": False,
               "yes": True, "no": False, "locked": True, "unlocked": False}


def _decimals(scale: int) -> int:
    return max(0, len(str(scale)) - 1)


def _temp(name: str, kind: Kind, address: int, lo: float | None = None,
          hi: float | None = None, access: Access = Access.READ, doc: str = "") -> Register:
    return Register(name, kind, address, "°C", scale=10, signed=True, lo=lo, hi=hi,
                    access=access, doc=doc)


_RW = Access.READ_WRITE
_H = Kind.HOLDING

#: Input registers 0–15 (FC 04), read as one block by ``status()``.
INPUTS: tuple[Register, ...] = (
    _temp("chamber_c", Kind.INPUT, 0, doc="chamber temperature (PV)"),
    _temp("setpoint_c", Kind.INPUT, 1, doc="working setpoint"),
    Register("heater_pct", Kind.INPUT, 2, "%", scale=10, doc="heater output"),
    Register("o2_ppm", Kind.INPUT, 3, "ppm", doc="oxygen"),
    Register("state", Kind.INPUT, 4, doc="program state (OvenState)"),
    Register("segment", Kind.INPUT, 5, doc="active segment, 0-based; 0xFFFF none"),
    Register("soak_left_s", Kind.INPUT, 6, "s", words=2, doc="soak time left in the segment"),
    Register("alarm_word", Kind.INPUT, 8, doc="alarm bits (OvenAlarm)"),
    Register("n2_flow_slm", Kind.INPUT, 9, "slm", scale=10, doc="nitrogen flow"),
    Register("batch_no", Kind.INPUT, 10, words=2, doc="batch of the current/last program"),
    _temp("wafer_c", Kind.INPUT, 12, doc="wafer (load) temperature"),
    Register("since_end_s", Kind.INPUT, 13, "s", words=2, doc="time since the program ended"),
    Register("phase", Kind.INPUT, 15, doc="segment phase (SegmentPhase)"),
)
INPUT_BLOCK = (0, 16)  # first address, count

#: Register 100: commands, written alone with FC 06.
COMMAND = Register("command", _H, 100, lo=1, hi=5, access=Access.WRITE, doc="command (Command)")

#: Program registers 101–107 (108–109 reserved: read 0, writes ignored).
PROGRAM_HEAD: tuple[Register, ...] = (
    Register("segments", _H, 101, lo=1, hi=MAX_SEGMENTS, access=_RW, doc="number of segments"),
    Register("o2_limit", _H, 102, "ppm", lo=5, hi=1000, access=_RW, doc="O2 limit to heat"),
    Register("n2_flow", _H, 103, "slm", scale=10, lo=0.0, hi=100.0, access=_RW,
             doc="nitrogen flow setpoint"),
    _temp("high_limit", _H, 104, 50.0, 400.0, _RW, "high limit"),
    _temp("unload_temp", _H, 105, 50.0, 150.0, _RW, "unload temperature"),
    Register("next_batch", _H, 106, words=2, access=_RW, doc="batch number for the next START"),
)
RESERVED = (108, 2)
SEGMENT_BASE = 110
SEGMENT_STRIDE = 3


def segment_registers(n: int) -> tuple[Register, Register, Register]:
    """Target, ramp and soak rows of segment ``n`` (0 … 7)."""
    a = SEGMENT_BASE + SEGMENT_STRIDE * n
    return (
        _temp(f"seg{n}_target", _H, a, 20.0, 400.0, _RW, f"segment {n} target temperature"),
        Register(f"seg{n}_ramp", _H, a + 1, "°C/min", scale=10, lo=0.1, hi=20.0, access=_RW,
                 doc=f"segment {n} ramp rate"),
        Register(f"seg{n}_soak", _H, a + 2, "min", lo=0, hi=1440, access=_RW,
                 doc=f"segment {n} soak time"),
    )


SEGMENTS: tuple[Register, ...] = tuple(
    r for n in range(MAX_SEGMENTS) for r in segment_registers(n)
)
PROGRAM_FIRST = PROGRAM_HEAD[0].address  # 101
PROGRAM_LAST = SEGMENTS[-1].address  # 133

#: Coil 0 and discrete inputs 0–4.
DOOR_LOCK = Register("door_lock", Kind.COIL, 0, access=_RW, is_bool=True,
                     doc="door lock (1 = locked); unlock refused hot or while running")
DISCRETES: tuple[Register, ...] = (
    Register("door_closed", Kind.DISCRETE, 0, is_bool=True),
    Register("door_locked", Kind.DISCRETE, 1, is_bool=True),
    Register("contactor_closed", Kind.DISCRETE, 2, is_bool=True),
    Register("high_limit_tripped", Kind.DISCRETE, 3, is_bool=True),
    Register("cassette_present", Kind.DISCRETE, 4, is_bool=True),
)

#: Everything ``get``/``set`` know by name (the command register is not a setting).
SETTINGS: Mapping[str, Register] = {
    r.name: r for r in (*PROGRAM_HEAD, *SEGMENTS, DOOR_LOCK, *INPUTS, *DISCRETES)
}


def program_words(program: OvenProgram) -> tuple[int, ...]:
    """Registers 101 … 109 + 3·len(segments) as one FC 16 block (108–109 written as 0).

    Raises ValidationError (naming the register) for anything out of range, and
    for a program the oven would refuse to START: a used segment target not
    below high limit − 15 °C.
    """
    n = len(program.segments)
    count = PROGRAM_HEAD[0]
    if not 1 <= n <= MAX_SEGMENTS:
        raise ValidationError(count.name, n, count.allowed, tool=TOOL)
    head = (n, program.o2_limit_ppm, program.n2_flow_slm, program.high_limit_c,
            program.unload_c, program.batch_no)
    words: list[int] = []
    for reg, value in zip(PROGRAM_HEAD, head, strict=True):
        words.extend(reg.encode(value))
    words.extend([0] * RESERVED[1])
    high = PROGRAM_HEAD[3].check(program.high_limit_c)
    for i, seg in enumerate(program.segments):
        target, ramp, soak = segment_registers(i)
        if target.check(seg.target_c) >= high - START_MARGIN_C:
            raise ValidationError(target.name, seg.target_c,
                                  f"below high_limit − {START_MARGIN_C:.0f} °C = "
                                  f"{high - START_MARGIN_C:.1f} °C", tool=TOOL)
        for reg, value in ((target, seg.target_c), (ramp, seg.ramp_c_per_min),
                           (soak, seg.soak_min)):
            words.extend(reg.encode(value))
    return tuple(words)


def decode_program(words: tuple[int, ...] | list[int]) -> OvenProgram:
    """Registers 101 … 133 (as read back) → the program, segments up to the count."""
    def at(reg: Register) -> float | int | bool:
        i = reg.address - PROGRAM_FIRST
        return reg.decode(tuple(words[i:i + reg.words]))

    n = int(at(PROGRAM_HEAD[0]))
    if not 1 <= n <= MAX_SEGMENTS:
        raise ValueError(f"segment count register reads {n}, outside 1–{MAX_SEGMENTS}")
    segs = []
    for i in range(n):
        target, ramp, soak = segment_registers(i)
        segs.append(Segment(float(at(target)), float(at(ramp)), int(at(soak))))
    _, o2, n2, high, unload, batch = (at(r) for r in PROGRAM_HEAD)
    return OvenProgram(tuple(segs), int(o2), float(n2), float(high), float(unload), int(batch))


def decode_readings(inputs: list[int]) -> OvenReadings:
    """Input registers 0–15 → OvenReadings.

    Raises ValueError for a value no CV-25 reports (an unknown state or phase):
    the driver treats that as a garbled reply.
    """
    v = {r.name: r.decode(tuple(inputs[r.address:r.address + r.words])) for r in INPUTS}
    seg = int(v["segment"])
    return OvenReadings(
        chamber_c=float(v["chamber_c"]),
        setpoint_c=float(v["setpoint_c"]),
        heater_pct=float(v["heater_pct"]),
        o2_ppm=int(v["o2_ppm"]),
        state=OvenState(int(v["state"])),
        segment=None if seg == 0xFFFF else seg,
        soak_left_s=int(v["soak_left_s"]),
        alarms=OvenAlarm.from_word(int(v["alarm_word"])),
        n2_flow_slm=float(v["n2_flow_slm"]),
        batch_no=int(v["batch_no"]),
        wafer_c=float(v["wafer_c"]),
        since_end_s=int(v["since_end_s"]),
        phase=SegmentPhase(int(v["phase"])),
    )


def decode_status(inputs: list[int], discretes: list[bool], coil: bool) -> OvenStatus:
    """Input registers 0–15 + discrete inputs 0–4 + coil 0 → OvenStatus (raises
    ValueError as ``decode_readings``)."""
    d: dict[str, object] = {r.name: bool(discretes[r.address]) for r in DISCRETES}
    return OvenStatus(**{**vars(decode_readings(inputs)), **d, "lock_requested": bool(coil)})
