"""The shared SCPI layer: reply parsers, validators, declarative settings, the instrument base.

Models: PyMeasure's ``Instrument.control`` and QCoDeS ``Parameter`` with validators; this
is our own small version. A tool driver declares its settings as :class:`Setting`
class attributes (a data table) and gets ``settings``, ``get``/``set`` and attribute
access for free.

Protocol decisions a reader cannot see in the calls (manual: exposure-tool.md, shared by
plasma-etcher.md):

- After every command (setting write, start, ``*RST``, ...) the error queue is drained with
  ``SYSTem:ERRor?`` until ``0,"No error"``. If anything was queued, the newest entry is
  raised (our line ran last; older entries are logged at warning) as
  :class:`ToolRejected`, or :class:`InterlockError` for +201/+301.
- "A failed query sends nothing", so a query that the tool may refuse (results outside
  COMPLETE) would only show up as a timeout. Such queries are sent behind a harmless
  sentinel, ``*ESE?;:<query>``: the sentinel's reply always comes back, so a missing
  part means "refused" at once, and the error queue says why.
- Snapshots (``status()``, readings) are one line of joined queries, so every value
  comes from the same instant; joined commands are separated by ``;:``.
- Queries are retried once after a lost connection (the transport reconnects and
  probes first). Commands (anything that changes the tool, and above all the starts)
  and ``SYSTem:ERRor?`` (reading pops the queue) are never retried.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Concatenate, ParamSpec, Self, TypeVar

import structlog

from drivers.errors import CommsError, InterlockError, ToolError, ToolRejected, ValidationError
from drivers.identity import Identity
from drivers.transport import ConnectionLost, LineTransport

log = structlog.get_logger("viaform.drivers")

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
P = ParamSpec("P")

_NR1 = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_ERROR = re.compile(r'([+-]?\d+),"(.*)"', re.DOTALL)

#: The word the tools answer for "no wafer", "no job", "no alarm".
NONE_WORD = "NONE"


class ReplyError(CommsError):
    """A reply that does not have the manual's format (garbled or out of step)."""


# ------------------------------------------------------------------ reply parsers
def parse_int(text: str) -> int:
    """NR1 (``12``; a sign is accepted for the manual's ``-1`` markers)."""
    if not _NR1.fullmatch(text):
        raise ReplyError(f"not an integer (NR1): {text!r}")
    return int(text)


def parse_real(text: str) -> float:
    """NR2/NR3 (``320.0``, ``3.2E2``, ``12``); never NaN or infinite."""
    if not _NUMBER.fullmatch(text):
        raise ReplyError(f"not a number (NR2): {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise ReplyError(f"not a finite number: {text!r}")
    return value


def parse_bool(text: str) -> bool:
    """``1``/``0`` exactly."""
    if text == "1":
        return True
    if text == "0":
        return False
    raise ReplyError(f"not a boolean (1/0): {text!r}")


def parse_name(text: str) -> str:
    """A bare name, state or id (``READY``, ``W-01``)."""
    if not _NAME.fullmatch(text):
        raise ReplyError(f"not a bare name: {text!r}")
    return text


def parse_optional_name(text: str) -> str | None:
    """A name, or None for ``NONE``."""
    return None if text == NONE_WORD else parse_name(text)


def parse_names(text: str) -> tuple[str, ...]:
    """A comma list of bare names; ``NONE`` (or nothing) is the empty tuple."""
    if text in ("", NONE_WORD):
        return ()
    return tuple(parse_name(part) for part in text.split(","))


def parse_reals(text: str) -> list[float]:
    """A comma list of numbers; an empty reply (or ``NONE``) is an empty list."""
    if text in ("", NONE_WORD):
        return []
    return [parse_real(part) for part in text.split(",")]


def parse_error(text: str) -> tuple[int, str]:
    """An error-queue entry ``<code>,"<text>"`` (``""`` inside the text is one quote)."""
    match = _ERROR.fullmatch(text)
    if not match:
        raise ReplyError(f'not an error entry (<code>,"<text>"): {text!r}')
    return int(match.group(1)), match.group(2).replace('""', '"')


def parse_enum(enum: type[E], text: str) -> E:
    try:
        return enum(text)
    except ValueError:
        raise ReplyError(f"not a {enum.__name__}: {text!r}") from None


def split_fields(text: str, count: int) -> list[str]:
    """Exactly ``count`` comma-separated fields."""
    parts = text.split(",")
    if len(parts) != count:
        raise ReplyError(f"expected {count} comma-separated fields: {text!r}")
    return parts


# --------------------------------------------------------------------- validators
def check_wafer_id(value: object, parameter: str = "wafer_id") -> str:
    """1–32 of ``[A-Za-z0-9_.-]``; ``NONE`` is refused (the tools answer it for "no wafer")."""
    allowed = "1-32 characters of [A-Za-z0-9_.-], not NONE"
    if not isinstance(value, str) or not _ID.fullmatch(value) or value == NONE_WORD:
        raise ValidationError(parameter, value, allowed)
    return value


def _number(parameter: str, value: object, allowed: str) -> float:
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value.strip()):
            raise ValidationError(parameter, value, allowed)
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(parameter, value, allowed)
    return float(value)


class Kind(StrEnum):
    REAL = "real"
    INT = "int"
    BOOL = "bool"
    NAME = "name"


_TRUE = {"1", "ON", "TRUE"}
_FALSE = {"0", "OFF", "FALSE"}


@dataclass
class Setting:
    """One SCPI setting, declared as data, usable as a descriptor on the instrument class.

    ``tool.dose`` queries ``EXP:DOSE?`` and ``tool.dose = 320`` validates then writes
    ``EXP:DOSE 320.0`` and checks the error queue (both through the instrument's
    ``get``/``set``). ``name`` is the attribute name, filled in by ``__set_name__``.
    ``choices_query`` names the query listing the allowed names of a NAME setting.
    """

    header: str
    kind: Kind
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    read_only: bool = False
    choices_query: str | None = None
    name: str = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: ScpiInstrument | None, owner: type) -> Any:
        if instance is None:
            return self
        return instance.get(self.name)

    def __set__(self, instance: ScpiInstrument, value: Any) -> None:
        instance.set(self.name, value)

    # -------------------------------------------------------------- wire forms
    def __post_init__(self) -> None:
        #: The short form of the header (upper-case letters, optional nodes left out).
        self.short = short_form(self.header)
        self.query_line = f"{self.short}?"

    def write_line(self, value: Any) -> str:
        """The command for an already validated value."""
        if self.kind is Kind.REAL:
            return f"{self.short} {float(value)!r}"
        if self.kind is Kind.INT:
            return f"{self.short} {int(value)}"
        if self.kind is Kind.BOOL:
            return f"{self.short} {'1' if value else '0'}"
        return f"{self.short} {value}"

    def parse(self, text: str) -> Any:
        """The typed value of a query reply."""
        return {Kind.REAL: parse_real, Kind.INT: parse_int, Kind.BOOL: parse_bool,
                Kind.NAME: parse_name}[self.kind](text)

    # -------------------------------------------------------------- validation
    def allowed(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.kind is Kind.BOOL:
            return "True/False (ON/OFF, 1/0)"
        if self.kind is Kind.NAME:
            return f"a name from {self.choices_query}" if self.choices_query else "a bare name"
        if self.kind is Kind.INT:
            return f"an integer {self.lo:g} to {self.hi:g}{unit}"
        return f"{self.lo!r} to {self.hi!r}{unit}"

    def validate(self, value: object, choices: tuple[str, ...] | None = None) -> Any:
        """The value as it will be sent (strings from a CLI are accepted and converted)."""
        if self.read_only:
            raise ValidationError(self.name, value, f"nothing: {self.name} is read-only")
        allowed = self.allowed()
        if self.kind is Kind.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().upper() in _TRUE | _FALSE:
                return value.strip().upper() in _TRUE
            raise ValidationError(self.name, value, allowed)
        if self.kind is Kind.NAME:
            if not isinstance(value, str) or not _ID.fullmatch(value):
                raise ValidationError(self.name, value, allowed)
            if choices is not None and value not in choices:
                raise ValidationError(self.name, value, f"one of {', '.join(choices)}")
            return value
        number = _number(self.name, value, allowed)
        if self.kind is Kind.INT:
            if not number.is_integer():
                raise ValidationError(self.name, value, allowed)
            number = int(number)
        lo = -math.inf if self.lo is None else self.lo
        hi = math.inf if self.hi is None else self.hi
        if not lo <= number <= hi:
            raise ValidationError(self.name, value, allowed)
        return number


def short_form(header: str) -> str:
    """``EXPosure:DOSE`` → ``EXP:DOSE``; ``SYSTem:ERRor[:NEXT]`` → ``SYST:ERR``."""
    header = re.sub(r"\[[^\]]*\]", "", header)
    nodes = []
    for node in header.split(":"):
        upper = "".join(c for c in node if not c.islower())
        nodes.append(upper or node.upper())
    return ":".join(nodes)


# ------------------------------------------------------------------ typed results
class JobStatus(StrEnum):
    NONE = "NONE"
    RUNNING = "RUNNING"
    DONE = "DONE"
    ABORTED = "ABORTED"


def parse_identity(text: str) -> Identity:
    """An ``*IDN?`` reply: ``<maker>,<model>,<serial>,<firmware>``."""
    maker, model, serial, firmware = (p.strip() for p in split_fields(text, 4))
    if not maker or not model:
        raise ReplyError(f"not an *IDN? reply: {text!r}")
    return Identity(maker, model, serial, firmware)


#: Error codes that mean "an interlock is open" (LX-365 +201, PE-200 +301).
INTERLOCK_CODES = frozenset({201, 301})
#: Sentinel query placed before a query the tool may refuse (see the module docstring).
SENTINEL = "*ESE?"
_MAX_DRAIN = 40  # the queue holds 16; more means the reply stream is out of step


def locked(method: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[Any, P], T]:
    """Run the method under the instance's lock (one lock per instance)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def rejection(code: int, text: str, *, tool: str, command: str) -> ToolRejected:
    cls = InterlockError if code in INTERLOCK_CODES else ToolRejected
    return cls(code, text, tool=tool, command=command)


# ---------------------------------------------------------------- the base driver
class ScpiInstrument:
    """A SCPI tool over a :class:`LineTransport`: settings table, queries, checked commands.

    Public methods take the instance lock; the ``_``-methods assume it is held.
    """

    name: ClassVar[str] = "scpi"
    #: The model ``*IDN?`` must report (a different tool at the address is an error).
    model: ClassVar[str] = ""
    state_enum: ClassVar[type[StrEnum]]
    abort_command: ClassVar[str] = "ABORt"
    settings: ClassVar[Mapping[str, Setting]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = dict(cls.settings)
        table.update({k: v for k, v in vars(cls).items() if isinstance(v, Setting)})
        cls.settings = MappingProxyType(table)

    def __init__(self, transport: LineTransport) -> None:
        self.transport = transport
        self._lock = threading.Lock()

    # ----------------------------------------------------------- life cycle
    @locked
    def connect(self) -> Identity:
        """Open the connection (probing ``*IDN?``) and check it is the right tool."""
        ident = parse_identity(self.transport.connect())
        if self.model and ident.model != self.model:
            self.transport.close()
            raise ToolError(f"{self.transport.target} is a {ident.maker} {ident.model}, "
                            f"not a {self.model}", tool=self.name)
        return ident

    def close(self) -> None:
        with self._lock:
            self.transport.close()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- low level (lock held)
    def _query(self, line: str, parse: Callable[[str], T] = str, *, retry: bool = True) -> T:
        """One query line; parsed. Retried once after a lost connection."""
        try:
            reply = self.transport.query(line)
        except ConnectionLost:
            if not retry:
                raise
            log.info("query_retry", tool=self.name, command=line)
            reply = self.transport.query(line)
        try:
            return parse(reply)
        except CommsError:
            self.transport.close()  # out of step or garbled: never read on from here
            raise

    def _query_many(self, lines: Sequence[str]) -> list[str]:
        """Several queries joined on one line; one reply part per query."""
        parts = self._query(";:".join(lines), lambda r: r.split(";"))
        if len(parts) != len(lines):
            self.transport.close()
            raise ReplyError(f"{len(lines)} replies expected, got {len(parts)}", tool=self.name)
        return parts

    def _parsed(self, parts: Sequence[str], parsers: Sequence[Callable[[str], Any]]) -> list[Any]:
        """Parse reply parts; a bad one closes the link so the next call starts in step."""
        try:
            return [parse(part) for parse, part in zip(parsers, parts, strict=True)]
        except CommsError:
            self.transport.close()
            raise

    def _snapshot(self, fields: Sequence[tuple[str, Callable[[str], Any]]]) -> list[Any]:
        """Queries joined on one line (one consistent instant), each part parsed."""
        return self._parsed(self._query_many([q for q, _ in fields]), [p for _, p in fields])

    def _query_refusable(self, lines: Sequence[str]) -> list[str]:
        """Queries the tool may refuse, behind the sentinel: a refusal raises at once."""
        return self._behind_sentinel(";:".join(lines), len(lines))

    def _behind_sentinel(self, line: str, queries: int) -> list[str]:
        joined = f"{SENTINEL};{line}" if line.startswith("*") else f"{SENTINEL};:{line.lstrip(':')}"
        parts = self._query(joined, lambda r: r.split(";"))
        if len(parts) <= queries:  # a query failed: its error is in the queue
            self._check_errors(line, expect_error=True)
        if len(parts) != queries + 1:
            self.transport.close()
            raise ReplyError(f"{queries} replies expected to {line!r}, got {parts!r}",
                             tool=self.name)
        return parts[1:]

    def _command(self, line: str, *, clear_stale: bool = False) -> None:
        """Send a command once (never retried), then check the error queue.

        ``clear_stale`` first drains what the tool queued on its own (an alarm
        queues its +2xx/+3xx code when it happens), so that it is logged as the
        tool's report and not raised as this command's failure. The commands a
        host sends after an alarm (abort, alarm clear, unload, reset) use it.
        """
        if clear_stale:
            for code, text in self._drain_errors():
                log.warning("tool_error_queued_before", tool=self.name, code=code, text=text,
                            command=line)
        self.transport.send(line)
        self._check_errors(line)

    def _drain_errors(self) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for _ in range(_MAX_DRAIN):
            code, text = self._query("SYST:ERR?", parse_error, retry=False)
            if code == 0:
                return found
            found.append((code, text))
        self.transport.close()
        raise ReplyError("error queue never emptied", tool=self.name)

    def _check_errors(self, command: str, *, expect_error: bool = False) -> None:
        errors = self._drain_errors()
        for code, text in errors:
            log.warning("tool_error", tool=self.name, code=code, text=text, command=command)
        if errors:
            raise rejection(*errors[-1], tool=self.name, command=command)
        if expect_error:
            raise ReplyError(f"{command!r} sent no reply and queued no error", tool=self.name)

    def _setting(self, name: str) -> Setting:
        try:
            return self.settings[name]
        except KeyError:
            raise ValidationError("setting", name, ", ".join(self.settings)) from None

    def _validated(self, name: str, value: object) -> Any:
        setting = self._setting(name)
        choices = None
        if setting.choices_query and not setting.read_only:
            choices = self._query(setting.choices_query, parse_names)
        return setting.validate(value, choices)

    def _check_combination(self, values: Mapping[str, Any]) -> None:
        """Cross-setting rules a tool enforces; override (``values``: name → new value)."""

    # ----------------------------------------------------------- settings
    @locked
    def get(self, name: str) -> Any:
        setting = self._setting(name)
        return self._query(setting.query_line, setting.parse)

    @locked
    def set(self, name: str, value: object) -> None:
        """Validate, refuse before sending if out of range, write, check the error queue."""
        checked = self._validated(name, value)
        self._check_combination({name: checked})
        self._command(self._setting(name).write_line(checked))

    # ----------------------------------------------------------- common to both tools
    @locked
    def idn(self) -> Identity:
        return self._query("*IDN?", parse_identity)

    @locked
    def errors(self) -> list[tuple[int, str]]:
        """Drain the error queue, oldest first."""
        return self._drain_errors()

    @locked
    def alarms(self) -> tuple[str, ...]:
        return self._query("ALAR?", parse_names)

    @locked
    def clear_alarms(self) -> None:
        self._command("ALAR:CLE", clear_stale=True)

    @locked
    def reset(self) -> None:
        self._command("*RST", clear_stale=True)

    @locked
    def state(self) -> Any:
        return self._query("SYST:STAT?", functools.partial(parse_enum, self.state_enum))

    @locked
    def wafer_id(self) -> str | None:
        return self._query("WAF:ID?", parse_optional_name)

    @locked
    def boot_id(self) -> int:
        return self._query("SYST:BOOT?", parse_int)

    @locked
    def job_count(self, wafer_id: str) -> int:
        return self._query(f"JOB:COUN? {check_wafer_id(wafer_id)}", parse_int)

    @locked
    def load(self, wafer_id: str) -> None:
        """Start loading ``wafer_id`` (never retried)."""
        self._command(f"WAF:LOAD {check_wafer_id(wafer_id)}")

    @locked
    def unload(self) -> None:
        """Start unloading (never retried)."""
        self._command("WAF:UNL", clear_stale=True)

    @locked
    def abort(self) -> None:
        self._command(short_form(self.abort_command), clear_stale=True)

    @locked
    def raw(self, line: str) -> str | None:
        """Send one line as typed; return its reply, or None when it has no query.

        The line goes behind the sentinel so a refused query raises the tool's error at
        once; a line without a query has its error queue checked like any command.
        """
        line = line.strip()
        if not line or "\n" in line or "\r" in line:
            raise ValidationError("line", line, "one non-empty line")
        queries = sum(1 for unit in line.split(";") if unit.strip().split(" ", 1)[0].endswith("?"))
        if queries == 0:
            self._command(line)
            return None
        return ";".join(self._behind_sentinel(line, queries))
