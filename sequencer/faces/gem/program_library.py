"""The equipment's process programs: the recipe and flow files of the line's recipes
folder, every version of each kept in the journal.

A process program (E30) is a recipe or flow YAML; its PPID is the file name without
``.yaml`` (flows find recipes, and the engine finds a lot's flow, by file name). The
folder is where the engine reads flows from (a lot started or resumed after a restart
reads it), so a stored program is written there, atomically, and each version (body,
time, who, sha256) is kept in the GEM store under ``pp.<PPID>``: the journal holds the
history, the folder the current version. A program already in the folder when the host
first replaces it gets its old body recorded first as version 0 (origin ``folder``).

``check`` applies ``viaform recipe check``'s rules (``process.recipe_files.inspect_file``)
to a copy of the folder with the new body in place, so a flow's recipes are found, a
recipe is checked against every flow that uses it, and nothing is written until all of
it is good. Every problem comes back, not just the first.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sequencer.faces.gem.context import GemContext
from sequencer.process.lots import ID_RULE, valid_id
from sequencer.process.recipe_fields import read_document
from sequencer.process.recipe_files import inspect_file
from sequencer.process.recipes import Problem
from sequencer.states.job import FINAL

PROGRAM_KINDS = ("exposure", "cure", "etch", "flow")
MAX_PROGRAM_BYTES = 256 * 1024
KEY = "pp."
CREATED, EDITED, DELETED = 1, 2, 3  # E30 PPChangeStatus


def _flow_recipes(path: Path) -> list[str]:
    """The recipe names a flow file's steps use ([] for anything else)."""
    kind, body, _ = read_document(path)
    if kind != "flow" or not isinstance(body, dict) or not isinstance(body.get("steps"), list):
        return []
    return [str(s["recipe"]) for s in body["steps"] if isinstance(s, dict) and "recipe" in s]


class ProgramLibrary:
    """The programs of ``recipes_dir``, with their versions in ``ctx.store``."""

    def __init__(self, recipes_dir: Path, ctx: GemContext) -> None:
        self.dir = Path(recipes_dir)
        self.ctx = ctx

    # ---- queries ----------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every PPID: the folder's recipe and flow files (lot files are not programs)."""
        out = []
        for path in sorted(self.dir.glob("*.yaml")):
            kind, _, _ = read_document(path)
            if kind in PROGRAM_KINDS:
                out.append(path.stem)
        return out

    def body(self, ppid: str) -> bytes | None:
        """The current body, exactly as stored (None: no such program)."""
        if not valid_id(ppid) or ppid not in self.names():
            return None
        return (self.dir / f"{ppid}.yaml").read_bytes()

    def versions(self, ppid: str) -> list[dict[str, Any]]:
        raw = self.ctx.store.get(KEY + ppid)
        return list(raw["versions"]) if isinstance(raw, dict) else []

    def flows_using(self, ppid: str) -> list[str]:
        return [p.stem for p in sorted(self.dir.glob("*.yaml")) if ppid in _flow_recipes(p)]

    def in_use(self, ppid: str) -> list[str]:
        """The unfinished lots whose flow is ``ppid`` or uses it."""
        flows = {ppid, *self.flows_using(ppid)}
        return [lot.lot_id for lot in self.ctx.line.lots()
                if lot.flow in flows and lot.state not in FINAL]

    # ---- the check --------------------------------------------------------------------
    def check(self, ppid: str, body: bytes) -> list[Problem]:
        """Every problem with ``body`` as program ``ppid`` (empty: it may be stored)."""
        if not valid_id(ppid):
            return [Problem("PPID", f"{ppid!r} is not a program name ({ID_RULE}; it is the "
                                    f"file name flows and lots find it by)")]
        if len(body) > MAX_PROGRAM_BYTES:
            return [Problem("PPBODY", f"{len(body)} bytes is above the {MAX_PROGRAM_BYTES} "
                                      f"bytes a program may have")]
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [Problem("PPBODY", f"not UTF-8 text (byte {exc.start}): a program is a "
                                      f"recipe or flow YAML file")]
        with tempfile.TemporaryDirectory(prefix="viaform-pp-") as tmp:
            work = Path(tmp)
            for path in self.dir.glob("*.yaml"):
                shutil.copyfile(path, work / path.name)
            target = work / f"{ppid}.yaml"
            target.write_bytes(body)
            kind, _, problems = read_document(target)
            if kind is not None and kind not in PROGRAM_KINDS:
                return [Problem(kind, f"a {kind} file is not a process program (a program "
                                      f"is a recipe or a flow)")]
            if kind is None:
                return problems
            _, problems = inspect_file(target, work)
            for flow in sorted(work.glob("*.yaml")):
                if flow != target and ppid in _flow_recipes(flow):
                    _, used = inspect_file(flow, work)
                    problems += [p.under(f"{flow.name} (uses {ppid}): ") for p in used]
            return problems

    # ---- changes ----------------------------------------------------------------------
    def _record(self, ppid: str, entry: dict[str, Any], who: str) -> int:
        versions = self.versions(ppid)
        path = self.dir / f"{ppid}.yaml"
        if not versions and path.is_file():
            versions.append(self._entry(path.read_bytes(), "folder", "B", 0))
        entry["version"] = len(versions)
        entry["who"] = who
        versions.append(entry)
        self.ctx.store.put(KEY + ppid, {"versions": versions})
        return int(entry["version"])

    @staticmethod
    def _entry(body: bytes, origin: str, fmt: str, version: int) -> dict[str, Any]:
        return {"version": version, "t": time.time(), "origin": origin, "format": fmt,
                "sha256": hashlib.sha256(body).hexdigest(),
                "body_b64": base64.b64encode(body).decode("ascii"), "deleted": False}

    def store(self, ppid: str, body: bytes, fmt: str, who: str) -> tuple[int, int]:
        """Write a checked program; (version, E30 PPChangeStatus: 1 created, 2 edited).
        ``fmt`` is the SECS item it came in (``A`` or ``B``), sent back the same way."""
        path = self.dir / f"{ppid}.yaml"
        status = EDITED if path.is_file() else CREATED
        version = self._record(ppid, self._entry(body, "host", fmt, 0), who)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, path)
        return version, status

    def format_of(self, ppid: str) -> str:
        """The item format (``A``/``B``) of the current version (``B`` for a folder file)."""
        versions = self.versions(ppid)
        return str(versions[-1]["format"]) if versions and not versions[-1]["deleted"] else "B"

    def delete(self, ppid: str, who: str) -> int:
        """Remove the program's file; a tombstone version keeps its last body's hash."""
        path = self.dir / f"{ppid}.yaml"
        body = path.read_bytes()
        entry = self._entry(body, "host", self.format_of(ppid), 0)
        entry.update(deleted=True, body_b64="")
        version = self._record(ppid, entry, who)
        path.unlink()
        return version
