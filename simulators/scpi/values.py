"""Parameter parsing and reply formatting shared by the SCPI tools.

Every parser raises :class:`ScpiError` with the code the manual prescribes:
-109 missing, -108 one too many, -224 not a value of the right kind (the
manuals list no -104), -222 a number outside the setting's range.
"""

from __future__ import annotations

import math
import re

from .errors import ScpiError

_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")


def one_arg(args: list[str]) -> str:
    if not args or args == [""]:
        raise ScpiError(-109)
    if len(args) > 1:
        raise ScpiError(-108)
    return args[0]


def no_args(args: list[str]) -> None:
    if args and args != [""]:
        raise ScpiError(-108)


def parse_number(arg: str) -> float:
    """An SCPI decimal numeric (``320``, ``3.2E2``, ``+320.0``); anything else is -224."""
    if not _NUMBER.match(arg.strip()):
        raise ScpiError(-224)
    value = float(arg)
    if not math.isfinite(value):
        raise ScpiError(-224)
    return value


def parse_real(arg: str, lo: float, hi: float) -> float:
    value = parse_number(arg)
    if not lo <= value <= hi:
        raise ScpiError(-222)
    return value


def parse_int(arg: str, lo: int, hi: int) -> int:
    """An integer setting; ``9.0E1`` is 90, ``90.5`` is -224 (not an integer)."""
    value = parse_number(arg)
    if value != int(value):
        raise ScpiError(-224)
    if not lo <= value <= hi:
        raise ScpiError(-222)
    return int(value)


def parse_bool(arg: str) -> bool:
    word = arg.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(-224)


def parse_id(arg: str) -> str:
    """A wafer id, bare or in double quotes; 1–32 of ``[A-Za-z0-9_.-]``, case-sensitive."""
    text = arg.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    if not _ID.match(text):
        raise ScpiError(-224)
    return text


def nr1(n: int) -> str:
    """Integer reply: NR1, no sign for non-negative values (``12``)."""
    return str(int(n))


def nr2(x: float, decimals: int = 1) -> str:
    """Real reply: NR2 with the setting's resolution (``320.0``)."""
    text = f"{x:.{decimals}f}"
    return "0." + "0" * decimals if text.startswith("-") and float(text) == 0 else text
