"""The manual settings a technician may change from the tool page, with their ranges.

The ranges are the drivers' own declarations (``Setting`` rows of the SCPI tools,
the oven's register map), read as data: the screen shows them and the driver checks
them when the value is sent (a value out of range comes back as the driver's one-line
refusal). Tables by tool *kind*, so a line with two ovens shows both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.etcher import PlasmaEtcher
from drivers.exposure import ExposureTool
from drivers.oven_map import SETTINGS as OVEN_SETTINGS
from drivers.scpi_values import Setting


@dataclass(frozen=True)
class SettingRow:
    name: str
    allowed: str  # the range in words, as the driver states it
    unit: str


def _scpi(table: Mapping[str, Setting]) -> tuple[SettingRow, ...]:
    return tuple(SettingRow(s.name, s.allowed(), s.unit) for s in table.values()
                 if not s.read_only)


def _oven() -> tuple[SettingRow, ...]:
    return tuple(SettingRow(r.name, r.allowed, r.unit) for r in OVEN_SETTINGS.values()
                 if not r.read_only)


#: tool kind → its writable settings
WRITABLE: dict[str, tuple[SettingRow, ...]] = {
    "exposure": _scpi(ExposureTool.settings),
    "etcher": _scpi(PlasmaEtcher.settings),
    "oven": _oven(),
}

_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


def typed(text: str) -> str | int | float | bool:
    """A value typed into the form, as the API's ``set`` takes it: a whole number, a
    number, a truth word (true/false, on/off), else the text (a reticle's name)."""
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        value = float(t)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    return _WORDS.get(t.lower(), t)
