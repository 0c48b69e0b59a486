"""`viaform tool TOOL ACTION …`: technicians' manual commands, through the daemon or to the tool.

    viaform tool exposure|oven|etcher status|idn|errors|alarms|clear-alarms|reset
    viaform tool etcher-2 …               any further tool of tools.yaml, by its name
    viaform tool TOOL set NAME VALUE      viaform tool TOOL get NAME
    viaform tool exposure|etcher raw 'SCPI…'
    viaform tool TOOL take [--force] | give | e10          (daemon only)
    … [--config tools.yaml]         viaform tool -v …   (log every request/reply to stderr)
    viaform tool --daemon URL|none …

When a daemon runs (``--daemon``, ``$VIAFORM_DAEMON``, ``daemon.url`` in tools.yaml, or
one answering on the default address; see ``client.py``) every action goes through it,
so it can refuse (409) a command that would change a tool while a job step runs there;
the daemon's reason is printed and the exit code is 1. Otherwise straight to the tool.

Straight to the tool, a command that changes it (``set``, ``raw``, ``reset``,
``clear-alarms``, ``errors``, which drains the queue) holds the tool's lock while it runs
(sequencer/line/ownership.py): it is refused while another process owns the tool, naming the
owner and what to do (a daemon: go through it with ``take``; a run: wait for its end).
This holds too when the daemon owns the line but did not answer the 0.5 s probe: never a
fall-back to the tool. Read-only commands (``status``, ``get``, ``idn``, ``alarms``) take
no lock and always work (a tool on an exclusive serial port, though, answers only its
owner).

Exit codes: 0 done; 2 bad input (unknown tool, action or setting, a value out of
range, a bad tools file) — caught *before* connecting, so nothing is sent;
1 the tool could not be reached or refused (its own code and text are shown), or
another process owns it (busy, not bad input; nothing is sent).
Every failure is one readable line on stderr, never a traceback.
"""

from __future__ import annotations

import getpass
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
import typer.core
from structlog.typing import EventDict

from drivers.errors import CommsError, ToolError, ToolRejected, ValidationError
from sequencer.faces.cli.client import Client, DaemonOpt, call, connect
from sequencer.faces.cli.tool_daemon import daemon_command, daemon_simple
from sequencer.faces.cli.tool_render import compact_names, fmt, print_table
from sequencer.line.config import SCPI_KINDS, TOOLS, ConfigError, load_tools
from sequencer.line.ownership import ClaimError, LineOwned, manual_claim
from sequencer.store.manual_record import record_manual

#: kind → (module, class); imported only when used, so one broken driver cannot stop the others.
DRIVERS: dict[str, tuple[str, str]] = {
    "exposure": ("drivers.exposure", "ExposureTool"),
    "oven": ("drivers.oven", "CureOven"),
    "etcher": ("drivers.etcher", "PlasmaEtcher"),
}
ACTIONS = ("status", "idn", "errors", "alarms", "clear-alarms", "reset", "set", "get", "raw",
           "take", "give", "e10")

#: the simple actions that change the tool (``errors`` drains its queue); with set and raw
CHANGES = ("errors", "clear-alarms", "reset")

EXIT_TOOL = 1
EXIT_USAGE = 2


def fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


class _OneLineGroup(typer.core.TyperGroup):
    """An unknown sub-command is one line naming the allowed ones (exit 2), not a usage box."""

    what = "command"

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if self.what == "tool" and name and not name.startswith("-") \
                and self.get_command(ctx, name) is None and name in _further_tools(args):
            self.add_command(typer.main.get_command(_register(name)), name)
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            where = f"{ctx.info_name}: " if self.what == "action" else ""
            fail(f"{where}unknown {self.what} {name!r}; known: "
                 f"{', '.join(self.list_commands(ctx))}", EXIT_USAGE)
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: Any) -> list[str]:
        order = (*TOOLS, *self.commands) if self.what == "tool" else ACTIONS
        return [c for c in dict.fromkeys(order) if c in self.commands]


def _further_tools(args: list[str]) -> list[str]:
    """The tools of the tools file the command line names (``--config``/``-c``, else the
    default one) beyond the classic three: their sub-groups are made when named."""
    path: str | None = None
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    try:
        return [t for t in load_tools(path).kinds if t not in TOOLS]
    except ConfigError:
        return []  # the action itself reports a bad tools file


class _ToolGroup(_OneLineGroup):
    what = "tool"


class _ActionGroup(_OneLineGroup):
    what = "action"


app = typer.Typer(
    help="Technicians' manual commands, straight to one tool.",
    no_args_is_help=True,
    cls=_ToolGroup,
)

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50,
           "exception": 40}
_log_threshold = {"level": 100}
_daemon: dict[str, str | None] = {"flag": None}


def _drop_below_threshold(_logger: Any, method: str, event: EventDict) -> EventDict:
    if _LEVELS.get(method, 0) < _log_threshold["level"]:
        raise structlog.DropEvent
    return event


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="log every request and reply to stderr")] = False,
    daemon: DaemonOpt = None,
) -> None:
    """Quiet by default: a technician sees one line per failure, not the drivers' debug log.

    Only configures structlog when nobody else has (the daemon or demo may have), and
    filters with a processor rather than a filtering wrapper, so
    ``structlog.testing.capture_logs`` still sees every event.
    """
    _log_threshold["level"] = 10 if verbose else 100
    _daemon["flag"] = daemon
    if not structlog.is_configured():
        structlog.configure(processors=[
            structlog.processors.add_log_level,
            _drop_below_threshold,
            structlog.processors.TimeStamper(fmt="%H:%M:%S.%f"),
            structlog.dev.ConsoleRenderer(colors=False),
        ], logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))  # stderr of *now*


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="tools file (default: configs/tools.yaml or "
                 "$VIAFORM_TOOLS)", dir_okay=False),
]
#: `set focus -5.0` must reach us as a value, not as an unknown option.
_VALUE_ARGS = {"ignore_unknown_options": True}


# ------------------------------------------------------------------ plumbing
def build(tool: str, config: Path | None) -> Any:
    """The tool's driver from the tools file, not connected. Bad file → exit 2."""
    try:
        cfg = load_tools(config)
        entry = cfg.entry(tool)
        module, cls_name = DRIVERS[cfg.kind(tool)]
        cls = getattr(importlib.import_module(module), cls_name)
        return cls.from_config(entry)
    except (ConfigError, ValidationError, ValueError, KeyError, TypeError) as exc:
        fail(f"{tool}: bad configuration: {exc}", EXIT_USAGE)


def refusal(tool: str, exc: LineOwned) -> str:
    """The one line for a change refused because another process owns ``tool``."""
    owner = exc.owner
    if owner.is_daemon:
        at = f" (--daemon {owner.url})" if owner.url else ""
        how = (f"go through the daemon{at}, which serves these commands: "
               f"`viaform tool {tool} take`, then retry")
    elif owner.is_run:
        how = "wait for the run to end"
    else:
        how = "retry when it has ended"
    return f"{exc}; {how}"


@contextmanager
def owned(tool: str, config: Path | None, action: str) -> Iterator[None]:
    """Hold ``tool``'s lock for a change straight to the tool; exit 1 if another owns it."""
    try:
        cfg = load_tools(config)
    except ConfigError as exc:
        fail(f"{tool}: bad configuration: {exc}", EXIT_USAGE)
    try:
        claim = manual_claim(cfg, tool, f"viaform tool {tool} {action}")
    except LineOwned as exc:
        fail(refusal(tool, exc), EXIT_TOOL)
    except ClaimError as exc:
        fail(f"{tool}: {exc}; nothing was sent", EXIT_TOOL)
    with claim:
        yield
    warning = record_manual(cfg.journal, cfg.time_scale, tool, action, _who())
    if warning:
        typer.echo(f"{tool}: {warning}", err=True)


@contextmanager
def session(tool: str, driver: Any) -> Iterator[Any]:
    """Connected driver; every tool error becomes one line and an exit code."""
    try:
        driver.connect()
        try:
            yield driver
        finally:
            driver.close()
    except ValidationError as exc:  # a check only the tool can make (e.g. reticle catalogue)
        fail(_line(tool, exc), EXIT_USAGE)
    except ToolRejected as exc:
        to = f" {exc.command}" if exc.command else ""
        fail(f"{tool}: the tool refused{to}: code {exc.code}: {exc.text}", EXIT_TOOL)
    except CommsError as exc:
        fail(_line(tool, exc), EXIT_TOOL)
    except ToolError as exc:
        fail(_line(tool, exc), EXIT_TOOL)
    except OSError as exc:  # a driver that let one through: still one line
        fail(f"{tool}: {exc.strerror or exc}", EXIT_TOOL)


def _line(tool: str, exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith(f"{tool}:") else f"{tool}: {text}"


def setting_of(tool: str, driver: Any, name: str) -> Any:
    settings = driver.settings
    if name not in settings:
        fail(f"{tool}: unknown setting {name!r}; settings: {compact_names(settings)}",
             EXIT_USAGE)
    return settings[name]


def unit(setting: Any) -> str:
    u = getattr(setting, "unit", "")
    return f" {u}" if u else ""


def via_daemon(config: Path | None, *, required: bool = False) -> Client | None:
    """The daemon's client when one runs (see the module docstring), else None."""
    return connect(_daemon["flag"], config, required=required)


# ------------------------------------------------------------------ commands
def _kind_of(tool: str, config: Path | None) -> str:
    try:
        return load_tools(config).kind(tool)
    except ConfigError:
        return tool


def _register(tool: str) -> typer.Typer:
    """One sub-group per tool, so `viaform tool oven --help` lists what the oven takes."""
    sub = typer.Typer(help=f"manual commands for the {tool}", no_args_is_help=True,
                      cls=_ActionGroup)

    def simple(action: str, doc: str, run: Callable[[Any], None]) -> None:
        @sub.command(action, help=doc)
        def _cmd(config: ConfigOpt = None) -> None:
            client = via_daemon(config)
            if client is not None:
                daemon_simple(client, tool, action)
                return
            driver = build(tool, config)
            with _held(tool, config, action), session(tool, driver) as d:
                run(d)

    simple("status", "the tool's complete status, as a table",
           lambda d: print_table(f"{tool} status", d.status()))
    simple("idn", "maker, model, serial, firmware",
           lambda d: print_table(f"{tool} identity", d.idn()))
    simple("errors", "drain the tool's error queue",
           lambda d: _print_errors(tool, d.errors()))
    simple("alarms", "active alarms", lambda d: typer.echo(f"{tool} alarms: {fmt(d.alarms())}"))
    simple("clear-alarms", "clear alarms whose cause is gone", lambda d: _clear(tool, d))
    def _reset(d: Any) -> None:
        d.reset()
        typer.echo(f"{tool}: reset done")

    simple("reset", "reset (oven: ABORT if running, then ACK ALARMS)", _reset)

    @sub.command("set", help="write one setting (checked against the manual's range first)",
                 context_settings=_VALUE_ARGS)
    def _set(name: str, value: str, config: ConfigOpt = None) -> None:
        client = via_daemon(config)
        if client is not None:
            daemon_command(client, tool, "set", name=name, value=value)
            typer.echo(f"{tool}: {name} = {fmt(daemon_command(client, tool, 'get', name=name))}")
            return
        driver = build(tool, config)
        setting = setting_of(tool, driver, name)
        if getattr(setting, "read_only", False):
            fail(f"{tool}: {name} is read-only", EXIT_USAGE)
        try:
            checked = setting.validate(value)
        except ValidationError as exc:
            fail(_line(tool, exc), EXIT_USAGE)
        with owned(tool, config, f"set {name}"), session(tool, driver) as d:
            d.set(name, checked)
            typer.echo(f"{tool}: {name} = {fmt(d.get(name))}{unit(setting)}")

    @sub.command("get", help="read one setting or reading")
    def _get(name: str, config: ConfigOpt = None) -> None:
        client = via_daemon(config)
        if client is not None:
            typer.echo(f"{tool}: {name} = {fmt(daemon_command(client, tool, 'get', name=name))}")
            return
        driver = build(tool, config)
        setting = setting_of(tool, driver, name)
        with session(tool, driver) as d:
            typer.echo(f"{tool}: {name} = {fmt(d.get(name))}{unit(setting)}")

    @sub.command("raw", help="send one SCPI line; print the reply if it has a query",
                 context_settings=_VALUE_ARGS)
    def _raw(line: str, config: ConfigOpt = None) -> None:
        if _kind_of(tool, config) not in SCPI_KINDS:
            fail(f"{tool}: raw takes SCPI lines, and the {tool} speaks Modbus; use "
                 f"`viaform tool {tool} get/set NAME` instead", EXIT_USAGE)
        client = via_daemon(config)
        if client is not None:
            reply = daemon_command(client, tool, "raw", line=line)
            typer.echo(reply if reply is not None else f"{tool}: sent (no reply expected)")
            return
        driver = build(tool, config)
        with owned(tool, config, "raw"), session(tool, driver) as d:
            reply = d.raw(line)
            typer.echo(reply if reply is not None else f"{tool}: sent (no reply expected)")

    @sub.command("take", help="take the tool from production (ENGINEERING once its step "
                              "ends); daemon only")
    def _take(force: Annotated[bool, typer.Option(
            "--force", help="engineer: pause the job running on it now")] = False,
              config: ConfigOpt = None) -> None:
        client = via_daemon(config, required=True)
        assert client is not None
        view = call(client, "POST", f"/tools/{tool}/take", {"force": force})
        typer.echo(f"{tool}: ENGINEERING, taken by {view['taken_by']}" if view["engineering"]
                   else f"{tool}: taken by {view['taken_by']}; ENGINEERING when step "
                        f"{view['step']} of lot {view['lot_id']} ends")

    @sub.command("give", help="give the tool back to production; daemon only")
    def _give(config: ConfigOpt = None) -> None:
        client = via_daemon(config, required=True)
        assert client is not None
        call(client, "POST", f"/tools/{tool}/give")
        typer.echo(f"{tool}: back in production")

    @sub.command("e10", help="SEMI E10 state and time in each state; daemon only")
    def _e10(config: ConfigOpt = None) -> None:
        client = via_daemon(config, required=True)
        assert client is not None
        view = call(client, "GET", f"/tools/{tool}/e10")
        typer.echo(f"{tool}: {view['state']}")
        for state, seconds in view["seconds"].items():
            typer.echo(f"  {state:<17} {seconds:10.1f} s")

    app.add_typer(sub, name=tool)
    return sub


def _who() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no user name on this system
        return "unknown"


def _held(tool: str, config: Path | None, action: str) -> Any:
    """:func:`owned` for an action that changes the tool, else nothing."""
    return owned(tool, config, action) if action in CHANGES else nullcontext()


def _print_errors(tool: str, errors: list[tuple[int, str]]) -> None:
    if not errors:
        typer.echo(f"{tool}: no errors")
    for code, text in errors:
        typer.echo(f"{code:+d} {text}")


def _clear(tool: str, d: Any) -> None:
    d.clear_alarms()
    typer.echo(f"{tool}: alarms cleared; active now: {fmt(d.alarms())}")


for _tool in TOOLS:
    _register(_tool)
