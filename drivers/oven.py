"""CV-25 nitrogen cure oven driver (Modbus TCP or RTU, pymodbus 3.16 sync client).

Everything register-shaped comes from the table in :mod:`drivers.oven_map`;
this module is the behaviour: which requests make one operation, in which
order, and what a refusal means. A Modbus exception 04 is explained from a
fresh status read (state, door, cassette, temperatures) so that the operator
sees *why* the oven refused; a START refused for the door is an
:class:`~drivers.errors.InterlockError`.

Never retried: START and every other write (commands, settings, uploads).
Queries are retried once after a lost connection (see :mod:`drivers.modbus`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from .errors import CommsError, InterlockError, ToolError, ToolRejected, ValidationError
from .identity import Identity
from .modbus import EXC_TEXT, Endpoint, ModbusLink
from .oven_map import (
    COMMAND,
    DISCRETES,
    DOOR_LOCK,
    INPUT_BLOCK,
    INPUTS,
    PROGRAM_FIRST,
    PROGRAM_LAST,
    RESERVED,
    SETTINGS,
    START_MARGIN_C,
    TOOL,
    Kind,
    Register,
    decode_program,
    decode_readings,
    decode_status,
    program_words,
)
from .oven_types import (
    OVEN_IDENTITY,
    PROGRAMMABLE_STATES,
    RUNNING_STATES,
    Command,
    OvenAlarm,
    OvenProgram,
    OvenReadings,
    OvenState,
    OvenStatus,
    Segment,
    SegmentPhase,
)

__all__ = [
    "CureOven", "Identity", "OvenAlarm", "OvenProgram", "OvenReadings", "OvenState", "OvenStatus",
    "Segment",
    "SegmentPhase",
]

_INPUT = {r.name: r for r in INPUTS}
#: States from which each command is accepted (ACK ALARMS: always).
_COMMAND_STATES: Mapping[Command, frozenset[OvenState]] = {
    Command.START: PROGRAMMABLE_STATES,
    Command.PAUSE: frozenset({OvenState.PURGING, OvenState.RUNNING}),
    Command.RESUME: frozenset({OvenState.PAUSED}),
    Command.ABORT: RUNNING_STATES,
}


class CureOven:
    """One CV-25. Thread-safe: every operation holds the link's lock."""

    name = TOOL

    def __init__(self, endpoint: Endpoint, *, poll_s: float = 5.0) -> None:
        self.endpoint = endpoint
        self.poll_s = poll_s
        self._link = ModbusLink(endpoint, tool=TOOL)

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Self:
        """The ``oven:`` mapping of tools.yaml (transport, host, port, unit, serial_port, ...)."""
        transport = str(entry.get("transport", "tcp")).lower()
        if transport not in ("tcp", "rtu"):
            raise ValidationError("oven.transport", transport, "tcp or rtu", tool=TOOL)
        if transport == "rtu" and not entry.get("serial_port"):
            raise ValidationError("oven.serial_port", entry.get("serial_port"),
                                  "a serial port path when transport is rtu", tool=TOOL)
        ep = Endpoint(
            transport=transport,
            host=str(entry.get("host", "127.0.0.1")),
            port=int(entry.get("port", 502)),
            serial_port=entry.get("serial_port"),
            baudrate=int(entry.get("baudrate", 19200)),
            unit=int(entry.get("unit", 1)),
            timeout_s=float(entry.get("timeout_s", 2.0)),
        )
        return cls(ep, poll_s=float(entry.get("poll_s", 5.0)))

    # ------------------------------------------------------------ connection
    def connect(self) -> None:
        """Open the link and probe it with a read of the program state register."""
        with self._link.lock:
            self._link.open()
            try:
                self._read_input(_INPUT["state"])
            except CommsError:
                self._link.close()
                raise

    def close(self) -> None:
        self._link.close()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ common API
    def idn(self) -> Identity:
        """Static: the CV-25 has no identification register."""
        return OVEN_IDENTITY

    def status(self) -> OvenStatus:
        """Input registers 0–15, discrete inputs 0–4 and coil 0: three requests."""
        with self._link.lock:
            inputs = self._link.read_input(*INPUT_BLOCK)
            discretes = self._link.read_discrete(0, len(DISCRETES))
            coil = self._link.read_coils(DOOR_LOCK.address, 1)[0]
        try:
            return decode_status(inputs, discretes, coil)
        except ValueError as exc:  # a state/phase no CV-25 reports: garbled
            raise CommsError(f"unexpected status values: {exc}", tool=TOOL) from None

    def readings(self) -> OvenReadings:
        """Input registers 0–15 alone, one request: state, temperatures, O2, N2 and the
        alarm word (door open, O2 high, N2 low and over-temperature among its bits). What a
        cure's every poll needs; ``status`` adds the discrete inputs and the lock coil."""
        inputs = self._link.read_input(*INPUT_BLOCK)
        try:
            return decode_readings(inputs)
        except ValueError as exc:  # a state/phase no CV-25 reports: garbled
            raise CommsError(f"unexpected status values: {exc}", tool=TOOL) from None

    def alarms(self) -> tuple[str, ...]:
        return OvenAlarm.from_word(int(self._read_input(_INPUT["alarm_word"]))).names()

    def clear_alarms(self) -> None:
        self.ack_alarms()

    def errors(self) -> list[tuple[int, str]]:
        """The oven has no error queue: refusals arrive as Modbus exceptions."""
        return []

    def reset(self) -> None:
        """ABORT if a program runs, then ACK ALARMS."""
        with self._link.lock:
            if self.state() in RUNNING_STATES:
                self.abort()
            self.ack_alarms()

    @property
    def settings(self) -> Mapping[str, Register]:
        return SETTINGS

    def get(self, name: str) -> float | int | bool:
        reg = _setting(name)
        if reg.kind is Kind.INPUT:
            return self._read_input(reg)
        if reg.kind is Kind.HOLDING:
            return reg.decode(tuple(self._link.read_holding(reg.address, reg.words)))
        if reg.kind is Kind.COIL:
            return bool(self._link.read_coils(reg.address, 1)[0])
        return bool(self._link.read_discrete(reg.address, 1)[0])

    def set(self, name: str, value: object) -> None:
        """Write one setting (checked first; FC 06, FC 16 for u32, FC 05 for the lock)."""
        reg = _setting(name)
        checked = reg.validate(value)
        if reg is DOOR_LOCK:
            self.lock_door(bool(checked))
            return
        words = reg.encode(checked)
        with self._link.lock:
            try:
                if len(words) == 1:
                    self._link.write_register(reg.address, words[0], what=f"set {reg.name}")
                else:
                    self._link.write_registers(reg.address, words)
            except ToolRejected as exc:
                raise self._explain(exc, f"set {reg.name}", self._program_write_reason) from None

    # ------------------------------------------------------------ program
    def upload(self, program: OvenProgram) -> None:
        """Write registers 101 … 109+3·n in one FC 16, read them back, raise if different."""
        words = program_words(program)  # ValidationError before anything is sent
        with self._link.lock:
            try:
                self._link.write_registers(PROGRAM_FIRST, words)
            except ToolRejected as exc:
                raise self._explain(exc, "upload", self._program_write_reason) from None
            back = self._link.read_holding(PROGRAM_FIRST, len(words))
        reserved = range(RESERVED[0] - PROGRAM_FIRST, RESERVED[0] - PROGRAM_FIRST + RESERVED[1])
        diff = [
            f"{PROGRAM_FIRST + i}: wrote {w}, reads {b}"
            for i, (w, b) in enumerate(zip(words, back, strict=True))
            if i not in reserved and w != b
        ]
        if diff:
            raise ToolError("program read-back differs from upload: " + "; ".join(diff),
                            tool=TOOL)

    def read_program(self) -> OvenProgram:
        """Registers 101–133: the program the next START would run."""
        words = self._link.read_holding(PROGRAM_FIRST, PROGRAM_LAST - PROGRAM_FIRST + 1)
        try:
            return decode_program(words)
        except ValueError as exc:
            raise CommsError(f"unexpected program registers: {exc}", tool=TOOL) from None

    # ------------------------------------------------------------ commands
    def start(self) -> None:
        """START (never retried). Refused: InterlockError for the door, else ToolRejected."""
        self._command(Command.START)

    def pause(self) -> None:
        self._command(Command.PAUSE)

    def resume(self) -> None:
        self._command(Command.RESUME)

    def abort(self) -> None:
        self._command(Command.ABORT)

    def ack_alarms(self) -> None:
        self._command(Command.ACK_ALARMS)

    def lock_door(self, locked: bool) -> None:
        """Coil 0. Unlocking is refused (04) while hot or while a program runs."""
        with self._link.lock:
            try:
                self._link.write_coil(DOOR_LOCK.address, locked,
                                      what="lock door" if locked else "unlock door")
            except ToolRejected as exc:
                if locked:  # the manual names no refusal of locking: report it as it came
                    raise
                raise self._explain(exc, "unlock door", self._unlock_reason) from None

    # ------------------------------------------------------------ queries
    def state(self) -> OvenState:
        try:
            return OvenState(int(self._read_input(_INPUT["state"])))
        except ValueError as exc:
            raise CommsError(f"unexpected program state: {exc}", tool=TOOL) from None

    def batch_no(self) -> int:
        """Batch number of the current or most recent program (0 before the first START)."""
        return int(self._read_input(_INPUT["batch_no"]))

    # ------------------------------------------------------------ internals
    def _read_input(self, reg: Register) -> float | int | bool:
        return reg.decode(tuple(self._link.read_input(reg.address, reg.words)))

    def _command(self, cmd: Command) -> None:
        with self._link.lock:
            try:
                self._link.write_register(COMMAND.address, int(cmd), what=cmd.name)
            except ToolRejected as exc:
                raise self._explain(exc, cmd.name, lambda st: self._command_reason(cmd, st)) \
                    from None

    def _explain(self, exc: ToolRejected, what: str,
                 reason: Any) -> ToolRejected:
        """Exception 04 + the reason read from the oven now (best effort)."""
        if exc.code != 4:
            return exc
        try:
            why, interlock = reason(self.status())
        except ToolError:
            why, interlock = "", False
        text = f"{EXC_TEXT[4]}: {why}" if why else EXC_TEXT[4]
        cls = InterlockError if interlock else ToolRejected
        return cls(exc.code, text, tool=TOOL, command=what)

    def _command_reason(self, cmd: Command, st: OvenStatus) -> tuple[str, bool]:
        allowed = _COMMAND_STATES.get(cmd)
        if allowed is not None and st.state not in allowed:
            names = ", ".join(s.name for s in sorted(allowed))
            return f"state is {st.state.name}; {cmd.name} needs {names}", False
        if cmd is not Command.START:
            return "", False
        if not st.door_closed:
            return "door open", True
        if not st.door_locked:
            return "door not locked", True
        if not st.cassette_present:
            return "no cassette in the oven", False
        return self._program_reason(), False

    def _program_reason(self) -> str:
        try:
            prog = self.read_program()
        except ToolError:
            return ""
        limit = prog.high_limit_c - START_MARGIN_C
        for i, seg in enumerate(prog.segments):
            if seg.target_c >= limit:
                return (f"segment {i} target {seg.target_c:.1f} °C is not below high limit "
                        f"− {START_MARGIN_C:.0f} = {limit:.1f} °C")
        return ""

    def _unlock_reason(self, st: OvenStatus) -> tuple[str, bool]:
        if st.state in RUNNING_STATES:
            return f"a program runs (state {st.state.name})", True
        try:
            unload = float(self.get("unload_temp"))
        except ToolError:
            return "", True
        if st.chamber_c > unload:
            return (f"chamber {st.chamber_c:.1f} °C is above the unload temperature "
                    f"{unload:.1f} °C", True)
        return "", True

    @staticmethod
    def _program_write_reason(st: OvenStatus) -> tuple[str, bool]:
        if st.state not in PROGRAMMABLE_STATES:
            return (f"state is {st.state.name}; program registers are written only in "
                    "IDLE, COMPLETE or ABORTED"), False
        return "", False


def _setting(name: str) -> Register:
    try:
        return SETTINGS[name]
    except KeyError:
        raise ValidationError("setting", name, ", ".join(SETTINGS), tool=TOOL) from None

