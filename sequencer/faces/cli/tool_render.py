"""Readable tables for `viaform tool`: any driver's status dataclass, identity, settings.

Generic on purpose: a status is a (possibly nested) dataclass, so one renderer
serves the three tools. Units come from the field-name suffix (``chamber_c`` →
°C, ``o2_ppm`` → ppm) — the drivers' naming convention — so no tool-specific
layout is needed here.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

#: Field-name suffix → unit shown after the value.
UNITS: tuple[tuple[str, str], ...] = (
    ("_c_per_min", "°C/min"), ("_c", "°C"), ("_pct", "%"), ("_ppm", "ppm"), ("_slm", "slm"),
    ("_um", "µm"), ("_mtorr", "mTorr"), ("_w", "W"), ("_sccm", "sccm"), ("_min", "min"),
    ("_s", "s"),
)


def unit_of(name: str) -> str:
    for suffix, unit in UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def fmt(value: Any) -> str:
    """One value as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Flag) and not isinstance(value, enum.IntEnum):
        names = [m.name for m in type(value) if m in value and m.name]
        return ", ".join(names) if names else "none"
    if isinstance(value, enum.Enum):
        return str(value.name)
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"
    if isinstance(value, tuple | list):
        return ", ".join(fmt(v) for v in value) if value else "none"
    return str(value)


def rows(obj: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(name, shown value) for every leaf of a dataclass / mapping, nested names dotted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items: Iterable[tuple[str, Any]] = (
            (f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)
        )
    elif isinstance(obj, Mapping):
        items = obj.items()
    else:
        yield prefix.rstrip("."), fmt(obj)
        return
    for name, value in items:
        full = f"{prefix}{name}"
        if (dataclasses.is_dataclass(value) and not isinstance(value, type)) or isinstance(
            value, Mapping
        ):
            yield from rows(value, f"{full}.")
            continue
        unit = unit_of(str(name))
        shown = fmt(value)
        yield full, f"{shown} {unit}" if unit and value is not None else shown


def table(title: str, obj: Any) -> Table:
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("field")
    t.add_column("value")
    for name, value in rows(obj):
        t.add_row(name, value)
    return t


def print_table(title: str, obj: Any) -> None:
    Console(highlight=False).print(table(title, obj))


_NUMBERED = re.compile(r"([a-z_]+?)(\d+)(_\w+)")


def compact_names(names: Iterable[str]) -> str:
    """``seg0_target … seg7_target`` → ``seg{0-7}_target``: the allowed names, on one line."""
    groups: dict[tuple[str, str], list[int]] = {}
    out: list[str] = []
    for name in names:
        m = _NUMBERED.fullmatch(name)
        if not m:
            out.append(name)
            continue
        key = (m.group(1), m.group(3))
        if key not in groups:
            out.append("\0".join(key))
        groups.setdefault(key, []).append(int(m.group(2)))
    shown = []
    for item in out:
        if "\0" in item:
            head, tail = item.split("\0")
            nums = sorted(groups[(head, tail)])
            if len(nums) == 1:  # o2_limit is a name, not a series
                shown.append(f"{head}{nums[0]}{tail}")
            else:
                shown.append(f"{head}{{{nums[0]}-{nums[-1]}}}{tail}")
        else:
            shown.append(item)
    return ", ".join(shown)
