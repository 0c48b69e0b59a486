"""The manual commands' vocabulary: which exist, for which kinds of tool, their arguments,
and which of them change a tool (refused while a job step runs on it).

The engine maps a command's name to the driver method of the same name
(``faces/http/manual.py``, docs/drivers.md); the API validates a request with
:func:`check_command` before the line is asked, so a bad one is refused whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sequencer.line.config import SCPI_KINDS

# --- manual commands: the vocabulary, and which of them change a tool -------------------
EVERY_KIND = frozenset({"exposure", "etcher", "oven"})
EVERY_TOOL = EVERY_KIND  # (the name before a line had several tools of a kind)
Scalar = (str, int, float, bool)


@dataclass(frozen=True)
class CommandSpec:
    """One manual command: ``changes`` = refused while a job step runs on the tool.

    ``args`` maps an argument name to the types it takes (bool is never a number).
    The engine maps the name to the driver method of the same name (docs/drivers.md).
    """

    changes: bool
    tools: frozenset[str] = EVERY_KIND  # the kinds of tool that take the command
    args: tuple[tuple[str, tuple[type, ...]], ...] = ()
    help: str = ""


_WAFER = (("wafer_id", (str,)),)
COMMANDS: dict[str, CommandSpec] = {
    "idn": CommandSpec(False, help="identity"),
    "status": CommandSpec(False, help="complete status snapshot"),
    "alarms": CommandSpec(False, help="the tool's active alarm names"),
    "get": CommandSpec(False, args=(("name", (str,)),), help="read one declared setting"),
    "last_job": CommandSpec(False, SCPI_KINDS, help="JOB:LAST?"),
    "result": CommandSpec(False, SCPI_KINDS, help="last measured result"),
    "readings": CommandSpec(False, frozenset({"etcher"}), help="gauges, RF, OES"),
    "batch_no": CommandSpec(False, frozenset({"oven"}), help="current batch number"),
    "read_program": CommandSpec(False, frozenset({"oven"}), help="the uploaded program"),
    # Draining the error queue changes what a running step's own check would see.
    "errors": CommandSpec(True, help="drain the error queue"),
    "set": CommandSpec(True, args=(("name", (str,)), ("value", Scalar)),
                       help="write one declared setting"),
    "raw": CommandSpec(True, SCPI_KINDS, (("line", (str,)),),
                       help="one SCPI line; a pure query is allowed while busy"),
    "clear_alarms": CommandSpec(True, help="ALARm:CLEar / ACK ALARMS"),
    "reset": CommandSpec(True, help="*RST (oven: ABORT then ACK)"),
    "abort": CommandSpec(True, help="abort what the tool is doing"),
    "load": CommandSpec(True, SCPI_KINDS, _WAFER, help="load a wafer"),
    "unload": CommandSpec(True, SCPI_KINDS, help="unload the wafer"),
    "remote": CommandSpec(True, frozenset({"exposure"}), help="take remote control"),
    "local": CommandSpec(True, frozenset({"exposure"}), help="give control to the panel"),
    "start_exposure": CommandSpec(True, frozenset({"exposure"})),
    "start_develop": CommandSpec(True, frozenset({"exposure"})),
    "start_etch": CommandSpec(True, frozenset({"etcher"})),
    "start": CommandSpec(True, frozenset({"oven"}), help="start the uploaded program"),
    "pause": CommandSpec(True, frozenset({"oven"})),
    "resume": CommandSpec(True, frozenset({"oven"})),
    "ack_alarms": CommandSpec(True, frozenset({"oven"})),
    "lock_door": CommandSpec(True, frozenset({"oven"}), (("locked", (bool,)),)),
}


def raw_is_query(line: str) -> bool:
    """True if every ``;``-separated part of a SCPI line is a query other than SYST:ERR?."""
    parts = [p.strip() for p in line.split(";")]
    if not parts or any(not p for p in parts):
        return False
    for part in parts:
        header = part.split()[0].upper()
        if not header.endswith("?") or (header.startswith(":SYST") or header.startswith("SYST")) \
                and "ERR" in header:
            return False
    return True


def changes_tool(command: str, args: Mapping[str, Any]) -> bool:
    """Whether this (validated) command changes the tool, i.e. must wait for an idle tool."""
    if command == "raw":
        return not raw_is_query(str(args.get("line", "")))
    return COMMANDS[command].changes


def check_command(tool: str, command: str, args: Mapping[str, Any],
                  kind: str | None = None) -> list[tuple[str, str]]:
    """Every problem with a manual command to ``tool`` (of ``kind``; default: the tool is
    named by its kind) as (place, message); empty means valid."""
    spec = COMMANDS.get(command)
    if spec is None:
        return [("command", f"unknown command {command!r} (known: {', '.join(COMMANDS)})")]
    if (kind or tool) not in spec.tools:
        of = f"{tool} ({kind})" if kind and kind != tool else tool
        return [("command", f"{command!r} is not a {of} command "
                            f"(only {', '.join(sorted(spec.tools))})")]
    problems: list[tuple[str, str]] = []
    wanted = dict(spec.args)
    for name in args:
        if name not in wanted:
            problems.append((f"args.{name}", f"unknown argument (allowed: "
                                             f"{', '.join(wanted) or 'none'})"))
    for name, types in wanted.items():
        if name not in args:
            problems.append((f"args.{name}", "missing"))
            continue
        value = args[name]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            problems.append((f"args.{name}", f"{value!r} is not {names}"))
        elif isinstance(value, str) and not value.strip():
            problems.append((f"args.{name}", "empty"))
    return problems
