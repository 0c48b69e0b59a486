"""The IEEE 488.2 instrument both SCPI tools build on.

One instance is one instrument: one error queue, one ESR, one command table,
shared by every connection. Subclasses register their commands with
:meth:`ScpiInstrument.add` and override :meth:`update`, :meth:`pending`,
:meth:`on_reset` and, for a power cycle, :meth:`on_power_off` / :meth:`on_power_on`.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .errors import (
    ESR_OPC,
    ESR_POWER_ON,
    STANDARD_TEXTS,
    ScpiError,
    esr_bit_for,
)
from .parser import Node, Unit, compile_header, iter_units, path_matches
from .values import no_args, nr1, one_arg, parse_int

QUEUE_DEPTH = 16


def _new_boot_id() -> int:
    """A ``SYSTem:BOOT?`` value: random, so a host cannot mistake one boot for another."""
    return random.SystemRandom().randint(1, 2**31 - 1)

SetHandler = Callable[[list[str]], None]
QueryHandler = Callable[[list[str]], str]


def _bare_query(read: Callable[[], str]) -> QueryHandler:
    """A query that takes no parameter: -108 if one is sent, else ``read()`` at call time."""
    def query(args: list[str]) -> str:
        no_args(args)
        return read()
    return query


def _bare_set(do: Callable[[], None]) -> SetHandler:
    """A command that takes no parameter: -108 if one is sent, else ``do()``."""
    def command(args: list[str]) -> None:
        no_args(args)
        do()
    return command


@dataclass
class _Entry:
    header: str
    nodes: tuple[Node, ...]
    set: SetHandler | None
    query: QueryHandler | None


class ScpiInstrument:
    """Error queue with overflow, ESR/ESE/SRE/STB, the common commands, a command table."""

    #: tool-specific error texts (+2xx / +3xx); subclasses extend
    error_texts: dict[int, str] = {}

    def __init__(self, idn: str, clock) -> None:
        self.idn = idn
        self.clock = clock
        self.boot_id = _new_boot_id()
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = ESR_POWER_ON
        self.ese = 0
        self.sre = 0
        self._opc_armed = False
        self._table: list[_Entry] = []
        self._add_common()

    # ----------------------------------------------------------- registration
    def add(
        self,
        header: str,
        *,
        set: SetHandler | None = None,  # noqa: A002 - the manual's word
        query: QueryHandler | None = None,
    ) -> None:
        self._table.append(_Entry(header, compile_header(header), set, query))

    def _add_common(self) -> None:
        self._common: dict[str, tuple[SetHandler | None, QueryHandler | None]] = {
            "*IDN": (None, _bare_query(lambda: self.idn)),
            "*RST": (_bare_set(self._rst), None),
            "*CLS": (_bare_set(self._cls), None),
            "*ESR": (None, _bare_query(self._read_esr)),
            "*ESE": (self._set_ese, _bare_query(lambda: nr1(self.ese))),
            "*SRE": (self._set_sre, _bare_query(lambda: nr1(self.sre))),
            "*STB": (None, _bare_query(lambda: nr1(self.stb()))),
            "*OPC": (_bare_set(self._arm_opc), None),  # *OPC? is awaited
            "*WAI": (no_args, None),  # awaited by execute()
            "*TST": (None, _bare_query(lambda: nr1(self.self_test()))),
        }
        self.add("SYSTem:ERRor[:NEXT]", query=_bare_query(self._next_error))
        self.add("SYSTem:BOOT", query=_bare_query(lambda: nr1(self.boot_id)))

    # ----------------------------------------------------------- to override
    def update(self) -> None:
        """Advance the tool's model to ``self.clock.now()``."""

    def pending(self) -> bool:
        """True while an operation (load, unload, exposure, ...) is running."""
        return False

    def on_reset(self) -> None:
        """The tool's own ``*RST`` behaviour."""

    def self_test(self) -> int:
        return 0

    def on_power_off(self) -> None:
        """The tool's physics stop: a running operation ends where it got to (power_cycle)."""

    def on_power_on(self) -> None:
        """The tool's own power-on state (the status model is already reset)."""

    # ----------------------------------------------------------- power cycle
    def power_cycle(self) -> None:
        """Switch the instrument off and on again.

        Off: :meth:`on_power_off`. On: empty error queue, ESR = power-on bit only,
        ESE/SRE 0, no ``*OPC`` armed, a ``SYSTem:BOOT?`` value different from the last
        one; then :meth:`on_power_on`, which may queue the codes of alarms whose cause is
        present at power-on. The transport drops the connections (ScpiServer).
        """
        self.on_power_off()
        old = self.boot_id
        while self.boot_id == old:
            self.boot_id = _new_boot_id()
        self.errors.clear()
        self.esr = ESR_POWER_ON
        self.ese = self.sre = 0
        self._opc_armed = False
        self.on_power_on()

    # ----------------------------------------------------------- status model
    def push_error(self, code: int, text: str | None = None) -> None:
        text = text or self.error_texts.get(code) or STANDARD_TEXTS.get(code, "Error")
        self.esr |= esr_bit_for(code)
        if len(self.errors) >= QUEUE_DEPTH:
            self.errors[-1] = (-350, STANDARD_TEXTS[-350])
            self.esr |= esr_bit_for(-350)
        else:
            self.errors.append((code, text))

    def _next_error(self) -> str:
        code, text = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code},"{text}"'

    def stb(self) -> int:
        value = 0
        if self.errors:
            value |= 1 << 2
        if self.esr & self.ese:
            value |= 1 << 5
        if value & self.sre & ~(1 << 6):
            value |= 1 << 6  # MSS, IEEE 488.2 11.2.2.2
        return value

    def _read_esr(self) -> str:
        value, self.esr = self.esr, 0
        return nr1(value)

    def _set_ese(self, args: list[str]) -> None:
        self.ese = parse_int(one_arg(args), 0, 255)

    def _set_sre(self, args: list[str]) -> None:
        self.sre = parse_int(one_arg(args), 0, 255) & ~(1 << 6)

    def _cls(self) -> None:
        self.errors.clear()
        self.esr = 0
        self._opc_armed = False

    def _rst(self) -> None:
        self._opc_armed = False
        self.on_reset()

    def _arm_opc(self) -> None:
        self._opc_armed = True
        self._check_opc()

    def _check_opc(self) -> None:
        if self._opc_armed and not self.pending():
            self._opc_armed = False
            self.esr |= ESR_OPC

    def tick(self) -> None:
        """Called by the server every few ms: advance the model, fire a pending ``*OPC``."""
        self.update()
        self._check_opc()

    # ----------------------------------------------------------- execution
    def _lookup(self, unit: Unit) -> Callable[[list[str]], str | None]:
        if unit.common:
            setter, getter = self._common.get(unit.path[0], (None, None))
            handler = getter if unit.query else setter
            if unit.path[0] in ("*OPC", "*WAI") and unit.query == (unit.path[0] == "*OPC"):
                handler = handler or _bare_query(lambda: "1")
        else:
            handler = None
            for entry in self._table:
                if path_matches(entry.nodes, unit.path):
                    handler = entry.query if unit.query else entry.set
                    if handler is not None:
                        break
        if handler is None:
            raise ScpiError(-113)
        return handler

    async def execute(self, line: str, poll_wall_s: float = 0.005) -> str | None:
        """Run one line whole; return the joined replies, or None when it made none.

        ``*OPC?`` and ``*WAI`` wait here until :meth:`pending` is false.
        """
        replies: list[str] = []
        try:
            for unit in iter_units(line):
                self.update()
                handler = self._lookup(unit)
                if unit.common and unit.path[0] in ("*OPC", "*WAI") and (
                    unit.query or unit.path[0] == "*WAI"
                ):
                    no_args(unit.args)
                    while self.pending():
                        await asyncio.sleep(poll_wall_s)
                        self.update()
                result = handler(unit.args)
                if unit.query:
                    replies.append(result if result is not None else "")
        except ScpiError as exc:
            self.push_error(exc.code, exc.text)
        self._check_opc()
        return ";".join(replies) if replies else None
