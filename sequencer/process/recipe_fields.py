"""Reading the YAML files field by field: types, missing and unknown keys, ranges.

Every function here appends ``Problem``s to a list and carries on, so one pass
over a file reports everything wrong with it. The field tables are the ranges of
PROCESS.md intersected with the tool manuals (see ``docs/recipes.md``).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sequencer.process.recipes import Problem

KINDS = ("exposure", "cure", "etch", "flow", "lot")
_KIND_WORDS = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class Field:
    """One key of a file: its type, inclusive range, unit, and whether it may be left out."""

    key: str
    kind: type
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    required: bool = True
    nullable: bool = False  # `key: null` allowed (means "derive it")
    step: float | None = None  # resolution the tool takes (oven: 0.1)

    def allowed(self) -> str:
        return f"{fmt(self.lo)}–{fmt(self.hi)}{' ' + self.unit if self.unit else ''}"


def fmt(value: float | None) -> str:
    """Numbers as people write them: 200, 126.5, 0.95."""
    if value is None:
        return "?"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    return f"{value:.6g}" if not float(value).is_integer() else str(int(value))


def suggest(key: str, known: list[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1)
    if near:
        return f"unknown key (did you mean {near[0]!r}?)"
    return f"unknown key (allowed: {', '.join(known)})"


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    return type(value).__name__


def coerce(value: object, kind: type) -> tuple[bool, Any]:
    """(ok, value) for ``kind``; bools are never numbers, whole floats pass as ints."""
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return math.isfinite(value), float(value)
        return False, value
    if kind is int:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    return isinstance(value, kind), value


def type_message(value: object, kind: type) -> str:
    msg = f"{value!r} is not {_KIND_WORDS.get(kind, kind.__name__)}"
    if isinstance(value, str) and kind in (int, float):
        try:
            float(value)
            msg += " (YAML reads it as text: write digits with a decimal point, e.g. 320.0)"
        except ValueError:
            pass
    if isinstance(value, int | float) and kind is str:
        msg += " (quote it in YAML)"
    return msg


def range_problem(place: str, value: float, lo: float | None, hi: float | None,
                  allowed: str) -> Problem | None:
    """``place: 200 is above 120 (allowed 30–120 min)``, or None when inside."""
    if lo is not None and value < lo:
        return Problem(place, f"{fmt(value)} is below {fmt(lo)} (allowed {allowed})")
    if hi is not None and value > hi:
        return Problem(place, f"{fmt(value)} is above {fmt(hi)} (allowed {allowed})")
    return None


def read_fields(raw: object, fields: tuple[Field, ...], place: str,
                problems: list[Problem]) -> tuple[dict[str, Any], set[str]]:
    """Values that have the right type (range problems noted, value kept) and bad keys.

    A key is *bad* when it is missing or of the wrong type; checks across fields
    skip anything that depends on a bad key, so they never report on a guess.
    """
    keys = [f.key for f in fields]
    if not isinstance(raw, dict):
        problems.append(Problem(place, f"expected a mapping of {', '.join(keys)}, "
                                       f"got {kind_of(raw)}"))
        return {}, set(keys)
    for key in raw:
        if key not in keys:
            problems.append(Problem(f"{place}.{key}", suggest(str(key), keys)))
    values: dict[str, Any] = {}
    bad: set[str] = set()
    for f in fields:
        where = f"{place}.{f.key}"
        if f.key not in raw:
            if f.required:
                span = f", {f.allowed()}" if f.lo is not None else ""
                problems.append(Problem(where, f"missing ({_KIND_WORDS[f.kind]}{span})"))
                bad.add(f.key)
            continue
        value = raw[f.key]
        if value is None and f.nullable:
            values[f.key] = None
            continue
        ok, value = coerce(value, f.kind)
        if not ok:
            problems.append(Problem(where, type_message(raw[f.key], f.kind)))
            bad.add(f.key)
            continue
        if f.lo is not None or f.hi is not None:
            size = len(value) if isinstance(value, list) else value
            p = range_problem(where, size, f.lo, f.hi, f.allowed())
            if p:
                problems.append(p)
        if f.step and abs(value / f.step - round(value / f.step)) > 1e-6:
            problems.append(Problem(where, f"{fmt(value)} is finer than the tool's "
                                           f"{fmt(f.step)} {f.unit} steps"))
        if f.kind is str and not value.strip():
            problems.append(Problem(where, "is empty"))
            bad.add(f.key)
        values[f.key] = value
    return values, bad


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice (PyYAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} written twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_document(path: Path) -> tuple[str | None, Any, list[Problem]]:
    """(kind, body, problems) of a file with one top-level key from ``KINDS``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None, [Problem("file", "no such file")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, None, [Problem("file", f"cannot read: {exc}")]
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        return None, None, [Problem("file", f"not valid YAML{where}: {what}")]
    expected = f"one top-level key: {', '.join(KINDS)}"
    if not isinstance(doc, dict) or not doc:
        return None, None, [Problem("file", f"expected {expected}; got {kind_of(doc)}")]
    found = [k for k in doc if k in KINDS]
    problems = [Problem(str(k), suggest(str(k), list(KINDS))) for k in doc if k not in KINDS]
    if len(found) != 1:
        problems.append(Problem("file", f"expected {expected}; found {len(found)}"))
        return None, None, problems
    return found[0], doc[found[0]], problems
