"""The shared SCPI layer: the instrument base both SCPI drivers build on.

:class:`ScpiInstrument` sends queries and checked commands over a
:class:`~drivers.transport.LineTransport`; the values it sends and reads (reply parsers,
validators, the :class:`~drivers.scpi_values.Setting` table) are in
:mod:`drivers.scpi_values`.

Protocol decisions a reader cannot see in the calls (manual: exposure-tool.md, shared by
plasma-etcher.md):

- Every command (setting write, start, ``*RST``, ...) goes out as ONE line with its error
  check, ``*ESE?;:<command>;:SYST:ERR?``: one round trip when the tool accepts it. The
  manual stops a line at the first failing command and sends nothing for a line without
  replies, so the sentinel ``*ESE?`` in front always answers: one reply part means the
  command failed, two parts carry the oldest queued error. Whenever an error is queued
  the queue is drained with ``SYSTem:ERRor?`` until ``0,"No error"`` and the newest entry
  is raised (our line ran last; older entries are logged at warning) as
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
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Concatenate, Generic, NoReturn, ParamSpec, Self, TypeVar

import structlog

from drivers.errors import CommsError, InterlockError, ToolError, ToolRejected, ValidationError
from drivers.identity import Identity
from drivers.scpi_values import (
    ReplyError,
    Setting,
    check_wafer_id,
    parse_enum,
    parse_error,
    parse_identity,
    parse_int,
    parse_names,
    parse_optional_name,
    short_form,
)
from drivers.transport import ConnectionLost, LineTransport

log = structlog.get_logger("viaform.drivers")

T = TypeVar("T")
P = ParamSpec("P")
SelfT = TypeVar("SelfT", bound="ScpiInstrument")


# ------------------------------------------------------------------ typed results
class JobStatus(StrEnum):
    NONE = "NONE"
    RUNNING = "RUNNING"
    DONE = "DONE"
    ABORTED = "ABORTED"


J = TypeVar("J")


@dataclass(frozen=True)
class JobRecords(Generic[J]):
    """A tool's job records from one line of joined queries (one instant):
    ``SYSTem:BOOT?``, ``JOB:LAST?`` and, when a wafer is named, ``JOB:COUNt? <wafer>``
    (else ``count`` is None). What a start is checked and journaled against."""

    boot: int
    last: J
    count: int | None


#: Error codes that mean "an interlock is open" (LX-365 +201, PE-200 +301).
INTERLOCK_CODES = frozenset({201, 301})
#: Sentinel query placed before a query the tool may refuse (see the module docstring).
SENTINEL = "*ESE?"
_MAX_DRAIN = 40  # the queue holds 16; more means the reply stream is out of step


def locked(method: Callable[Concatenate[SelfT, P], T]) -> Callable[Concatenate[SelfT, P], T]:
    """Run the method under the instance's lock (one lock per instance); the signature,
    ``self``'s type included, stays what a type checker sees."""

    def wrapper(self: SelfT, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(wrapper, method)
    return wrapper


def _after_sentinel(line: str) -> str:
    """``line`` behind the sentinel query, starting at the root (``*`` headers already do)."""
    return f"{SENTINEL};{line}" if line.startswith("*") else f"{SENTINEL};:{line.lstrip(':')}"


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
    def _query(self, line: str, parse: Callable[[str], T], *, retry: bool = True,
               check_idle: bool = False) -> T:
        """One query line; parsed. Retried once after a lost connection unless ``retry``
        is False (``check_idle``: see :meth:`LineTransport.query`)."""
        try:
            reply = self.transport.query(line, check_idle=check_idle)
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
        parts = self._query(_after_sentinel(line), lambda r: r.split(";"))
        if len(parts) <= queries:  # a query failed: its error is in the queue
            self._check_errors(line, expect_error=True)
        if len(parts) != queries + 1:
            self.transport.close()
            raise ReplyError(f"{queries} replies expected to {line!r}, got {parts!r}",
                             tool=self.name)
        return parts[1:]

    def _command(self, line: str, *, clear_stale: bool = False) -> None:
        """Send a command once (never retried) with its error check on the same line.

        ``clear_stale`` first drains what the tool queued on its own (an alarm
        queues its +2xx/+3xx code when it happens), so that it is logged as the
        tool's report and not raised as this command's failure. The commands a
        host sends after an alarm (abort, alarm clear, unload, reset) use it.
        """
        if clear_stale:
            for code, text in self._drain_errors():
                log.warning("tool_error_queued_before", tool=self.name, code=code, text=text,
                            command=line)
        parts = self._query(f"{_after_sentinel(line)};:SYST:ERR?",
                            lambda r: r.split(";", 1), retry=False, check_idle=True)
        if len(parts) == 1:  # the line stopped at our command: its error is queued
            errors = self._drain_errors()
            if not errors:
                self.transport.close()
                raise ReplyError(f"{line!r} failed and queued no error", tool=self.name)
            self._raise_errors(line, errors)
        first = self._parsed(parts[1:], [parse_error])[0]
        if first[0] != 0:  # queued before or by our line: drain the rest, raise the newest
            self._raise_errors(line, [first, *self._drain_errors()])

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
        if errors:
            self._raise_errors(command, errors)
        if expect_error:
            raise ReplyError(f"{command!r} sent no reply and queued no error", tool=self.name)

    def _raise_errors(self, command: str, errors: Sequence[tuple[int, str]]) -> NoReturn:
        """Log every drained entry (oldest first); raise the newest, which our line made."""
        for code, text in errors:
            log.warning("tool_error", tool=self.name, code=code, text=text, command=command)
        raise rejection(*errors[-1], tool=self.name, command=command)

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
    def get_many(self, names: Sequence[str]) -> dict[str, Any]:
        """Several settings from one line of joined queries (one instant), by name."""
        settings = [self._setting(name) for name in names]
        values = self._snapshot([(s.query_line, s.parse) for s in settings])
        return dict(zip(names, values, strict=True))

    @locked
    def set(self, name: str, value: object) -> None:
        """Validate, refuse before sending if out of range, write, check the error queue."""
        checked = self._validated(name, value)
        self._check_combination({name: checked})
        self._command(self._setting(name).write_line(checked))

    @locked
    def set_many(self, values: Mapping[str, object]) -> None:
        """Validate every value (nothing is sent if one is wrong), then write them all on
        one line, in order, with one error check: one round trip. The tool stops the line
        at a refused write (the ones before it stay written; the read-back before a start
        catches any); the error raised names the whole line."""
        checked = {name: self._validated(name, value) for name, value in values.items()}
        self._check_combination(checked)
        self._write_all(checked)

    def _write_all(self, checked: Mapping[str, Any]) -> None:
        """Checked values (name → value), written in order on one command line."""
        self._command(";:".join(self._setting(name).write_line(value)
                                for name, value in checked.items()))

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
    def condition(self) -> tuple[Any, tuple[str, ...]]:
        """The state and the active alarms from one line (one instant)."""
        state, alarms = self._snapshot([("SYST:STAT?", functools.partial(parse_enum,
                                                                         self.state_enum)),
                                        ("ALAR?", parse_names)])
        return state, alarms

    @locked
    def wafer_id(self) -> str | None:
        return self._query("WAF:ID?", parse_optional_name)

    @locked
    def boot_id(self) -> int:
        return self._query("SYST:BOOT?", parse_int)

    @locked
    def job_count(self, wafer_id: str) -> int:
        return self._query(f"JOB:COUN? {check_wafer_id(wafer_id)}", parse_int)

    def _records(self, wafer_id: str | None, last: Callable[[str], J]) -> JobRecords[J]:
        """:class:`JobRecords` in one round trip; ``last`` parses the tool's JOB:LAST?."""
        fields: list[tuple[str, Callable[[str], Any]]] = [("SYST:BOOT?", parse_int),
                                                          ("JOB:LAST?", last)]
        if wafer_id is not None:
            fields.append((f"JOB:COUN? {check_wafer_id(wafer_id)}", parse_int))
        values = self._snapshot(fields)
        return JobRecords(values[0], values[1], values[2] if wafer_id is not None else None)

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
