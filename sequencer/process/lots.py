"""Lot files: which wafers, in which cassette slots, run which flow.

``lot: {lot_id, flow: FLOW-A, wafers: [{slot: 1, id: W01}, ...]}``. Ids follow
the tools' id rule (1–32 of ``[A-Za-z0-9_.-]``) so the exposure cell and the
etcher accept them; a lot cures as one oven batch, so it may not hold more
wafers than its flow's cure ``batch_size``.
"""

from __future__ import annotations

import re
from pathlib import Path

from sequencer.process.recipe_check import default_recipes_dir, parse_flow
from sequencer.process.recipe_fields import Field, read_document, read_fields
from sequencer.process.recipes import Flow, Lot, LotWafer, Problem, RecipeError

ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
ID_RULE = "1–32 characters of A-Z a-z 0-9 _ . -"
MAX_SLOTS = 25

LOT_FIELDS = (Field("lot_id", str), Field("flow", str),
              Field("wafers", list, 1, MAX_SLOTS, "wafers"))
WAFER_FIELDS = (Field("slot", int, 1, MAX_SLOTS), Field("id", str))


def valid_id(text: str) -> bool:
    """The tools' id rule (LX-365 / PE-200 manuals: otherwise error -224)."""
    return ID_RE.fullmatch(text) is not None


def lot_recipes_dir(path: Path | None, recipes_dir: Path | str | None) -> Path:
    """Where a lot's flow is found: the given folder, else ``../recipes`` next to the
    lot file's folder (configs/lots → configs/recipes), else configs/recipes."""
    if recipes_dir is not None:
        return Path(recipes_dir)
    if path is not None:
        sibling = path.resolve().parent.parent / "recipes"
        if sibling.is_dir():
            return sibling
    return default_recipes_dir()


def _wafers(raw: list[object], problems: list[Problem]) -> list[LotWafer]:
    wafers: list[LotWafer] = []
    slots: dict[int, int] = {}
    ids: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"lot.wafers[{i}]"
        vals, bad = read_fields(item, WAFER_FIELDS, where, problems)
        # both fields are required: a key not in ``bad`` is in ``vals`` with its type, and
        # from here on a value is None exactly when its key is bad
        slot: int | None = None if "slot" in bad else vals["slot"]
        wid: str | None = None if "id" in bad else vals["id"]
        if wid is not None and not valid_id(wid):
            problems.append(Problem(f"{where}.id", f"{wid!r} is not a tool id ({ID_RULE})"))
            bad.add("id")
            wid = None
        if slot is not None and slot in slots:
            problems.append(Problem(f"{where}.slot", f"slot {slot} is already used by "
                                                     f"lot.wafers[{slots[slot]}]"))
            bad.add("slot")
            slot = None
        if wid is not None and wid in ids:
            problems.append(Problem(f"{where}.id", f"{wid!r} is already lot.wafers[{ids[wid]}]"))
            bad.add("id")
            wid = None
        if slot is not None and 1 <= slot <= MAX_SLOTS:
            slots[slot] = i
        if wid is not None:
            ids[wid] = i
        if slot is not None and wid is not None:
            wafers.append(LotWafer(slot=slot, wafer_id=wid))
    return wafers


def parse_lot(raw: object, path: Path | None = None,
              recipes_dir: Path | str | None = None) -> tuple[Lot | None, list[Problem]]:
    """The lot with its flow, or None and every problem (the flow's prefixed ``lot.flow``)."""
    problems: list[Problem] = []
    vals, bad = read_fields(raw, LOT_FIELDS, "lot", problems)
    lot_id: str | None = None if "lot_id" in bad else vals["lot_id"]
    if lot_id is not None and not valid_id(lot_id):
        problems.append(Problem("lot.lot_id", f"{lot_id!r} is not a tool id ({ID_RULE})"))
    wafers = _wafers(vals.get("wafers", []), problems)
    flow = _flow(vals.get("flow"), lot_recipes_dir(path, recipes_dir), problems)
    if flow is not None and len(vals.get("wafers", [])) > flow.cure.batch_size:
        problems.append(Problem("lot.wafers", f"{len(vals['wafers'])} wafers do not fit one "
                                              f"cure batch of {flow.cure.batch_size} "
                                              f"({flow.cure.name})"))
    if problems or flow is None or lot_id is None:  # a bad lot_id is among the problems
        return None, problems
    return Lot(lot_id=lot_id, flow=flow, wafers=tuple(wafers), path=path), problems


def _flow(name: str | None, recipes_dir: Path, problems: list[Problem]) -> Flow | None:
    if name is None:
        return None
    path = recipes_dir / f"{name}.yaml"
    if not path.is_file():
        problems.append(Problem("lot.flow", f"unknown flow {name!r}: no {path}"))
        return None
    kind, body, file_problems = read_document(path)
    prefix = f"lot.flow({name})."
    if kind != "flow":
        problems.extend(p.under(prefix) for p in file_problems)
        if kind is not None:
            problems.append(Problem("lot.flow", f"{name} is a {kind}, not a flow"))
        return None
    flow, flow_problems = parse_flow(body, recipes_dir)
    problems.extend(p.under(prefix) for p in file_problems + flow_problems)
    if flow is not None and flow.name != name:
        problems.append(Problem("lot.flow", f"{path.name} holds flow {flow.name!r}, not {name!r}"))
        return None
    return flow


def load_lot(path: Path | str, recipes_dir: Path | str | None = None) -> Lot:
    """A lot file with its flow; raises ``RecipeError`` listing every problem."""
    path = Path(path)
    kind, body, problems = read_document(path)
    if kind is not None and kind != "lot":
        problems.append(Problem("file", f"a {kind} file, not a lot"))
    lot = None
    if kind == "lot":
        lot, lot_problems = parse_lot(body, path, recipes_dir)
        problems += lot_problems
    if problems or lot is None:
        raise RecipeError(str(path), problems)
    return lot
