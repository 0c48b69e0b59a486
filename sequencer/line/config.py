"""Loading ``configs/tools.yaml``: where each tool is, timeouts, the time scale, the journal.

The file is read through the schema of :mod:`sequencer.line.tools_schema` before
anything else happens, so a misspelt key, a wrong type or an impossible value
stops viaform before any tool is touched. The error names the file, the line
and the key path, e.g. ``configs/tools.yaml:14: exposure.timout_s: unknown key
(did you mean timeout_s?)``: the document is composed with PyYAML's node API
so that every key keeps the line it was written on.

``journal:`` is relative to the directory of the tools file that names it (not
to the working directory), so that a rerun from elsewhere finds the same journal.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sequencer.line.tools_schema import KIND_MODELS, ExtraTool, ToolsFile, known_keys

DEFAULT_TOOLS = Path("configs/tools.yaml")
#: the kinds of tool, which are also the names of the three classic entries
KINDS = ("exposure", "oven", "etcher")
TOOLS = KINDS  # the classic line's tool names (one of each kind, named by its kind)
#: The kinds spoken to in SCPI (raw lines, load/unload, last job); the oven speaks Modbus.
SCPI_KINDS = frozenset({"exposure", "etcher"})
SCPI_TOOLS = SCPI_KINDS

Marks = dict[tuple[str, ...], int]  # key path -> 1-based line of the key


class ConfigError(ValueError):
    """A tools file that is missing, unreadable or wrong; the message says where."""


@dataclass
class ToolsConfig:
    """The whole ``tools.yaml``; ``entries[tool]`` is that tool's mapping, as written."""

    path: Path
    time_scale: float
    journal: Path  # absolute when loaded from a file
    entries: dict[str, dict[str, Any]]
    sim_control: dict[str, Any] = field(default_factory=dict)
    handling: str = "sim"  # "sim": the simulators move wafers; "operator": confirmed by hand
    handling_timeout_s: float = 3600.0  # wall seconds an operator move may take
    daemon: dict[str, Any] = field(default_factory=dict)  # ``url`` and ``bind``, as written
    gem: dict[str, Any] = field(default_factory=dict)  # the ``gem:`` section, as written
    #: tool name → kind: the classic three (kind = name), then the further tools in the
    #: file's order
    kinds: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.entries:
            self.kinds.setdefault(name, str(self.entries[name].get("kind") or name))

    def entry(self, tool: str) -> dict[str, Any]:
        if tool not in self.entries:
            raise ConfigError(f"{self.path}: no entry for tool {tool!r}")
        return self.entries[tool]

    def kind(self, tool: str) -> str:
        """The kind of ``tool`` (ConfigError naming the tools if there is no such tool)."""
        if tool not in self.kinds:
            raise ConfigError(f"{self.path}: no tool {tool!r} (tools: "
                              f"{', '.join(self.kinds) or 'none'})")
        return self.kinds[tool]

    def of_kind(self, kind: str) -> list[str]:
        """The tools of ``kind``, in the file's order."""
        return [t for t, k in self.kinds.items() if k == kind]


def default_tools_path() -> Path:
    """``$VIAFORM_TOOLS`` if set, else ``configs/tools.yaml`` here, else the packaged copy."""
    env = os.environ.get("VIAFORM_TOOLS")
    if env:
        return Path(env)
    if DEFAULT_TOOLS.exists():
        return DEFAULT_TOOLS
    return Path(__file__).resolve().parent.parent / DEFAULT_TOOLS


def load_tools(path: Path | str | None = None) -> ToolsConfig:
    """Read and validate a tools file; :class:`ConfigError` (one or two lines) if it is wrong."""
    p = Path(path) if path else default_tools_path()
    raw, marks = _read(p)
    extra = _further_tools(p, raw, marks)
    errors: list[Any] = []
    try:
        model = ToolsFile.model_validate({k: v for k, v in raw.items() if k not in extra})
    except ValidationError as exc:
        errors += exc.errors()
    for name, kind in extra.items():
        try:
            KIND_MODELS[kind].model_validate(raw[name])
        except ValidationError as exc:
            errors += [{**e, "loc": (name, *e["loc"])} for e in exc.errors()]
    if errors:
        raise ConfigError(_describe(p, errors, marks, extra))
    journal = Path(os.path.expanduser(model.journal))
    if not journal.is_absolute():
        journal = Path(os.path.abspath(p.parent / journal))
    sim_control = (model.sim_control.model_dump() if model.sim_control
                   else {"host": "127.0.0.1", "port": 5030})
    return ToolsConfig(
        path=p,
        time_scale=model.time_scale,
        journal=journal,
        entries={**{t: dict(raw[t]) for t in KINDS if raw.get(t) is not None},
                 **{t: dict(raw[t]) for t in extra}},  # the classic three first
        sim_control=sim_control,
        handling=model.handling,
        handling_timeout_s=model.handling_timeout_s,
        daemon=dict(raw.get("daemon") or {}),
        gem=dict(raw.get("gem") or {}),
    )


def _further_tools(p: Path, raw: dict[str, Any], marks: Marks) -> dict[str, str]:
    """Top-level keys other than the schema's whose mapping has ``kind:``: tool → kind.
    A ``kind`` that is not one of the kinds is refused here, naming the line."""
    found: dict[str, str] = {}
    for key, value in raw.items():
        if key in ToolsFile.model_fields or not isinstance(value, dict) or "kind" not in value:
            continue
        try:
            found[str(key)] = ExtraTool.model_validate({"kind": value["kind"]}).kind
        except ValidationError as exc:
            errs = [{**e, "loc": (key, *e["loc"])} for e in exc.errors()]
            raise ConfigError(_describe(p, errs, marks, {})) from None
    return found


# ---------------------------------------------------------------- reading, with lines
def _read(p: Path) -> tuple[dict[str, Any], Marks]:
    """The document as a dict, and the line of every key in it."""
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such tools file") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{p}: cannot read the tools file ({why})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{p}: empty; expected a mapping of keys (see configs/tools.yaml)")
        marks: Marks = {}
        _marks(p, node, (), marks)
        raw = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}:{node.start_mark.line + 1}: expected a mapping at the top")
    return raw, marks


def _marks(p: Path, node: yaml.Node, path: tuple[str, ...], marks: Marks) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for key, value in node.value:
        name = str(key.value)
        where = (*path, name)
        if where in marks:
            raise ConfigError(f"{p}:{key.start_mark.line + 1}: {'.'.join(where)}: duplicate "
                              f"key (first on line {marks[where]})")
        marks[where] = key.start_mark.line + 1
        _marks(p, value, where, marks)


# ---------------------------------------------------------------- messages
def _describe(p: Path, errors: list[Any], marks: Marks, kinds: dict[str, str]) -> str:
    """The first problem in file order, and how many more there are."""
    problems = sorted(_problem(p, e, marks, kinds) for e in errors)
    first = problems[0][1]
    if len(problems) > 1:
        n = len(problems) - 1
        first += f"\n  (and {n} more problem{'s' if n > 1 else ''} in {p})"
    return first


def _problem(p: Path, err: Any, marks: Marks, kinds: dict[str, str]) -> tuple[int, str]:
    loc = tuple(str(x) for x in err["loc"])
    line = _line(loc, marks)
    dotted = ".".join(loc) or "(top)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = known_keys(loc[:-1], kinds)
        near = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
        what = "unknown key" + (f" (did you mean {near[0]}?)" if near else
                                f" (allowed: {', '.join(allowed)})")
        if len(loc) == 1 and not near:
            what += "; a further tool's entry needs kind: exposure | oven | etcher"
    elif kind == "missing":
        what = "missing (required)"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        what = f"expected a mapping of keys, got {err['input']!r}"
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
        what = f"{msg} (got {err['input']!r})" if kind != "value_error" else msg
    return line, f"{p}:{line}: {dotted}: {what}"


def _line(loc: tuple[str, ...], marks: Marks) -> int:
    """The line of the key at ``loc``, else of its nearest written parent, else 1."""
    for n in range(len(loc), 0, -1):
        if loc[:n] in marks:
            return marks[loc[:n]]
    return 1
