"""The row types of the GEM tables (data over code): variables, collection events, alarms.

Apart from ``tables`` so that ``gem300_tables`` can build rows without importing the
module that merges them (``tables`` imports it). ``tables`` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

#: SECS-II item formats a variable may have (E5 §9); the handler encodes with secsgem's
#: variable class of the same name (``A`` = String, ``BOOLEAN``, ``L`` = a list of U4/A).
Format = Literal["A", "U1", "U2", "U4", "I4", "F4", "F8", "BOOLEAN", "L"]


class VarClass(StrEnum):
    SV = "SV"  # status variable: read any time (S1F3), from the line's current state
    DV = "DV"  # data value: valid only in the reports of the events that carry it
    EC = "EC"  # equipment constant: set by the host (S2F15) within [min, max]


@dataclass(frozen=True)
class Variable:
    """One VID. ``name`` is the key an event's values and a getter use; for an EC,
    ``minimum``/``maximum`` bound a new value (EAC 3 outside) and ``default`` is the
    value before any S2F15."""

    vid: int
    name: str
    cls: VarClass
    fmt: Format
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    default: float | str | None = None


@dataclass(frozen=True)
class CollectionEvent:
    """One CEID: ``name`` is what ``GemContext.emit`` fires; ``dvs`` the DV names its
    reports may carry (a report linked to it may also name any SV)."""

    ceid: int
    name: str
    dvs: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlarmRow:
    """One ALID with its fixed ALTX (E30: text set per alarm, <= 120 characters).
    ``alcd`` is the E5 ALCD category (bits 1-7: 1 personal safety, 2 equipment safety,
    3 parameter control warning, 4 parameter control error, 5 irrecoverable error,
    6 equipment status warning, 7 attention flags); bit 8 (set) is added when sent."""

    alid: int
    name: str
    alcd: int
    text: str
