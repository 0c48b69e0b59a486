"""SCPI values: reply parsers, host-side validators and the declarative :class:`Setting`.

Everything here converts between the wire and Python and does no I/O: a reply part →
a typed value (``parse_*``, raising :class:`ReplyError`), a caller's value → the value
that will be sent (``check_*``, :meth:`Setting.validate`, raising ``ValidationError``
before anything goes out), a manual header → its short form.

Settings follow PyMeasure's ``Instrument.control`` and QCoDeS ``Parameter`` with
validators; this is our own small version. A tool driver declares its settings as
:class:`Setting` class attributes (a data table) on a
:class:`drivers.scpi.ScpiInstrument`, and gets ``settings``, ``get``/``set`` and
attribute access for free.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from drivers.errors import CommsError, ValidationError
from drivers.identity import Identity

if TYPE_CHECKING:
    from drivers.scpi import ScpiInstrument

E = TypeVar("E", bound=StrEnum)

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


def parse_identity(text: str) -> Identity:
    """An ``*IDN?`` reply: ``<maker>,<model>,<serial>,<firmware>``."""
    maker, model, serial, firmware = (p.strip() for p in split_fields(text, 4))
    if not maker or not model:
        raise ReplyError(f"not an *IDN? reply: {text!r}")
    return Identity(maker, model, serial, firmware)
