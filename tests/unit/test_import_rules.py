"""The import rules of docs/architecture.md, checked on the source with ``ast``.

Every ``import`` and ``from … import`` in drivers/, sequencer/ and simulators/
counts, module level or inside a function, except in the body of an
``if TYPE_CHECKING:`` block (its ``else:`` counts: that code runs). An arrow
goes to the module named; ``from pkg import name`` goes to ``pkg.name`` when that
is a module, else to the package itself. Importing ``a.b.c`` also runs
``a/__init__`` and ``a/b/__init__``; those implicit arrows are not drawn, so a
package's ``__init__`` that imports its own submodules is not a cycle by itself.
Imports by string (``importlib.import_module(name)``) are not seen.

The checker is tested on small trees written to ``tmp_path``, so a rule that
could not fail would show there; then it runs on the real tree.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("drivers", "sequencer", "simulators")

#: The one sequencer module that imports the simulators package.
SIM_IMPORTERS = frozenset({"sequencer.line.simhost"})
#: What starts the simulators (``viaform sim``, ``viaform demo`` in ``viaform run``):
#: the only modules that import ``sequencer.simhost``.
SIM_STARTERS = frozenset({"sequencer.faces.cli.sim", "sequencer.faces.cli.run"})
#: The rooms of ``sequencer`` (docs/architecture.md) and what each may import besides
#: itself: faces → line → runner → process / states / store → drivers, one way.
ROOMS: dict[str, frozenset[str]] = {
    "faces": frozenset({"line", "runner", "process", "states", "store", "drivers"}),
    "line": frozenset({"runner", "process", "states", "store", "drivers", "simulators"}),
    "runner": frozenset({"process", "states", "store", "drivers"}),
    "process": frozenset({"states"}),
    "states": frozenset(),
    "store": frozenset(),
}
#: Rooms inside a room, and the only modules of ``sequencer`` (outside themselves) they
#: may import (a name covers its submodules): the GEM face sees the line's contract,
#: never the HTTP app or the runner.
SUB_ROOMS: dict[str, tuple[str, ...]] = {
    "sequencer.faces.gem": ("sequencer.faces.http.contract", "sequencer.faces.http.faces",
                            "sequencer.faces.http.e10", "sequencer.faces.http.auth",
                            "sequencer.line.config",
                            "sequencer.line.tools_schema",
                            "sequencer.process", "sequencer.states", "sequencer.store"),
    # the operator's screen: the daemon's contract, core actions, sessions; the plots and the
    # report's table; never the engine, the line's assembly or the runner's machinery
    "sequencer.faces.screen": ("sequencer.faces.http.auth", "sequencer.faces.http.contract",
                               "sequencer.faces.http.core", "sequencer.faces.http.errors",
                               "sequencer.faces.http.sessions", "sequencer.faces.plots",
                               "sequencer.faces.report", "sequencer.runner.run_report",
                               "sequencer.process", "sequencer.states", "sequencer.store"),
    # the plots read the journal (read-only) and draw: no line, runner or other face
    "sequencer.faces.plots": ("sequencer.store",),
}


@dataclass(frozen=True)
class Arrow:
    """``source`` imports ``target`` at ``line`` of ``path``."""

    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.source} → {self.target} ({self.path.as_posix()}:{self.line})"


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under each package folder."""
    modules: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: all of them but ``if TYPE_CHECKING:`` bodies."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is one of ``modules`` (``a.b.Class`` → ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def arrows(modules: dict[str, Path], root: Path) -> list[Arrow]:
    """Every import arrow between two of ``modules`` (a module naming itself left out)."""
    out: list[Arrow] = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root)
        for node in import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [_known(alias.name, modules) for alias in node.names]
            else:
                base = _base(name, is_package, node)
                targets = [_known(f"{base}.{alias.name}", modules) or _known(base, modules)
                           for alias in node.names]
            out.extend(Arrow(name, t, rel, node.lineno) for t in set(targets)
                       if t is not None and t != name)
    return out


def cycles(found: list[Arrow]) -> list[tuple[list[str], list[Arrow]]]:
    """Each group of modules that import one another in a ring (strongly connected),
    with one cycle through its first module as arrows; empty when there is no cycle."""
    graph: dict[str, dict[str, Arrow]] = {}
    for a in sorted(found, key=lambda a: (a.source, a.target, a.line)):
        graph.setdefault(a.source, {}).setdefault(a.target, a)
        graph.setdefault(a.target, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [(sorted(g), _cycle_in(sorted(g), graph)) for g in sorted(groups, key=min)]


def _cycle_in(group: list[str], graph: dict[str, dict[str, Arrow]]) -> list[Arrow]:
    """The shortest way from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    came: dict[str, Arrow] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for v in frontier:
            for w, arrow in graph[v].items():
                if w not in members or w in came:
                    continue
                came[w] = arrow
                if w == start:
                    path = [arrow]
                    while path[0].source != start:
                        path.insert(0, came[path[0].source])
                    return path
                nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {group}")  # Tarjan said there was one


def cycle_report(found: list[tuple[list[str], list[Arrow]]]) -> str:
    """Per group: one cycle, each arrow with file:line, and every module of the group."""
    lines = []
    for group, cycle in found:
        chain = " → ".join([cycle[0].source, *(a.target for a in cycle)])
        lines.append(f"import cycle {chain}")
        lines.extend(f"    {a}" for a in cycle)
        if len(group) > len(cycle):
            lines.append(f"    modules in cycles with these: {', '.join(group)}")
    return "\n".join(lines)


def forbidden(found: list[Arrow]) -> list[str]:
    """Arrows against the rules, each with why."""
    out: list[str] = []
    for a in found:
        src, dst = a.source.split(".")[0], a.target.split(".")[0]
        if src == "simulators" and dst in ("drivers", "sequencer"):
            out.append(f"{a}: the simulators are the tools; they never import {dst}")
        elif src == "drivers" and dst in ("sequencer", "simulators"):
            out.append(f"{a}: drivers never import {dst}")
        elif src == "sequencer" and dst == "simulators" and a.source not in SIM_IMPORTERS:
            out.append(f"{a}: only {', '.join(sorted(SIM_IMPORTERS))} imports the simulators")
        elif a.target in SIM_IMPORTERS and a.source not in SIM_STARTERS:
            out.append(f"{a}: only what starts the simulators ({', '.join(sorted(SIM_STARTERS))})"
                       f" imports {a.target}; the control port's client is "
                       f"sequencer.line.sim_control")
        elif src == "sequencer" and (why := _room_rule(a)):
            out.append(why)
        elif src == "sequencer" and (why := _sub_room_rule(a)):
            out.append(why)
    return out


def _within(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def _sub_room_rule(a: Arrow) -> str | None:
    for room, allowed in SUB_ROOMS.items():
        if (_within(a.source, room) and not _within(a.target, room)
                and a.target.startswith("sequencer.")
                and not any(_within(a.target, x) for x in allowed)):
            return f"{a}: {room} may import only {', '.join(allowed)}; not {a.target}"
    return None


def _room(module: str) -> str:
    """The room of a module (``sequencer.runner.steps.cure`` → ``runner``); drivers and
    simulators are rooms of their own; ``sequencer`` itself (``__main__``) is ``root``."""
    parts = module.split(".")
    if parts[0] != "sequencer":
        return parts[0]
    return parts[1] if len(parts) > 2 or parts[1] in ROOMS else "root"


def _room_rule(a: Arrow) -> str | None:
    src, dst = _room(a.source), _room(a.target)
    if src in (dst, "root") or src not in ROOMS or dst in ROOMS.get(src, ()):
        return None
    allowed = ", ".join(sorted(ROOMS[src])) or "nothing outside it"
    return f"{a}: sequencer.{src} may import {allowed}; not {dst}"


def _check(root: Path) -> tuple[str, list[str]]:
    found = arrows(find_modules(root, PACKAGES), root)
    return cycle_report(cycles(found)), forbidden(found)


# --- the checker on small trees ------------------------------------------------------
def _tree(tmp: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for pkg in PACKAGES:
        (tmp / pkg).mkdir(exist_ok=True)
        (tmp / pkg / "__init__.py").touch()
    return tmp


def test_a_cycle_through_a_function_import_is_named_with_its_tangle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "sequencer/recovery.py": "import os\n\ndef f():\n    from .steps import x\n",
        "sequencer/steps/__init__.py": "from .cure import y\nfrom ..recovery import z\n",
        "sequencer/steps/cure.py": "from . import send_start\n",
    })
    report, bad = _check(root)
    assert report.splitlines() == [
        "import cycle sequencer.recovery → sequencer.steps → sequencer.recovery",
        "    sequencer.recovery → sequencer.steps (sequencer/recovery.py:4)",
        "    sequencer.steps → sequencer.recovery (sequencer/steps/__init__.py:2)",
        "    modules in cycles with these: sequencer.recovery, sequencer.steps, "
        "sequencer.steps.cure",
    ]
    assert bad == []


def test_imports_under_type_checking_do_not_count_but_its_else_does(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "sequencer/a.py": "import typing\nfrom . import b\n",
        "sequencer/b.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                           "    from .a import A\n"),
        "sequencer/c.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n"
                          "    from . import d\n",
        "sequencer/d.py": "from .c import x\n",
    })
    report, _ = _check(root)
    assert "sequencer.a" not in report
    assert "import cycle sequencer.c → sequencer.d → sequencer.c" in report


def test_relative_imports_resolve_from_packages_and_modules(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "sequencer/steps/__init__.py": "from .cure import run\n",
        "sequencer/steps/cure.py": "from ..journal import Journal\nfrom .. import clock\n",
        "sequencer/journal.py": "", "sequencer/clock.py": "",
    })
    got = {(a.source, a.target) for a in arrows(find_modules(root, PACKAGES), root)}
    assert got == {("sequencer.steps", "sequencer.steps.cure"),
                   ("sequencer.steps.cure", "sequencer.journal"),
                   ("sequencer.steps.cure", "sequencer.clock")}


def test_each_forbidden_arrow_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "simulators/oven.py": "from drivers.oven import CureOven\nimport sequencer.journal\n",
        "drivers/oven.py": "def f():\n    import simulators.oven\n    from sequencer import x\n",
        "sequencer/journal.py": "", "sequencer/line/simhost.py": "from simulators import oven\n",
        "sequencer/line/engine.py": "from simulators.oven import Oven\nfrom .simhost import S\n",
        "sequencer/faces/cli/sim.py": "from ...line.simhost import S\n",
    })
    _, bad = _check(root)
    assert sorted(b.split(" (")[0] for b in bad) == [
        "drivers.oven → sequencer", "drivers.oven → simulators.oven",
        "sequencer.line.engine → sequencer.line.simhost",
        "sequencer.line.engine → simulators.oven",
        "simulators.oven → drivers.oven", "simulators.oven → sequencer.journal",
    ]


# --- the real tree -------------------------------------------------------------------
def test_no_import_cycles() -> None:
    report, _ = _check(ROOT)
    assert report == "", "\n" + report


def test_no_arrow_breaks_the_layer_rules() -> None:
    _, bad = _check(ROOT)
    assert bad == [], "\n" + "\n".join(bad)


def _simulator_modules_after(statement: str) -> list[str]:
    code = (f"{statement}\nimport sys\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'simulators')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_the_daemon_does_not_load_the_simulators() -> None:
    assert _simulator_modules_after("import sequencer.faces.http.engine_line") == []
    assert _simulator_modules_after("import sequencer.faces.http.app") == []


def test_sim_handling_does_not_load_the_simulators_and_simhost_does() -> None:
    assert _simulator_modules_after("import sequencer.line.handling, "
                                    "sequencer.line.assemble") == []
    assert "simulators.runner" in _simulator_modules_after("import sequencer.line.simhost")


def test_a_room_that_imports_against_the_arrows_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "sequencer/runner/scheduler.py": "from sequencer.line.config import X\n",
        "sequencer/line/config.py": "", "sequencer/store/journal.py": "",
        "sequencer/states/substrate.py": "from ..store.journal import J\n",
        "sequencer/faces/cli.py": "from sequencer.runner.scheduler import S\n"})
    _, bad = _check(root)
    assert len(bad) == 2, bad
    assert any("sequencer.runner may import" in b and "not line" in b for b in bad), bad
    assert any("sequencer.states may import nothing outside it; not store" in b
               for b in bad), bad


def test_a_sub_room_that_imports_outside_its_list_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "sequencer/faces/gem/face.py": "from sequencer.faces.http.app import create_app\n"
                                       "from sequencer.faces.http.contract import L\n",
        "sequencer/faces/http/app.py": "", "sequencer/faces/http/contract.py": ""})
    _, bad = _check(root)
    assert len(bad) == 1, bad
    assert "sequencer.faces.gem may import only" in bad[0] and "faces.http.app" in bad[0], bad
