"""`viaform sim`: the bundled simulators as their own process, and their control port.

    viaform sim [--only TOOL] [--time-scale X] [--host H]   run until Ctrl-C
    viaform sim world                                      the simulated world as JSON
                                                           (where each wafer is, which
                                                           tool ran each of its steps)
    viaform sim fault TOOL FAULT [--param k=v]             inject a fault
    viaform sim clear TOOL [FAULT]                         clear one fault, or all
    viaform sim faults                                     the faults each tool knows
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.line.config import ConfigError, load_tools
from sequencer.line.simhost import (
    TOOLS,
    SimControlClient,
    SimControlError,
    SimStack,
    known_faults,
    sim_line,
    sim_ports,
)

app = typer.Typer(
    help="The bundled simulators: run them, look at the simulated world, inject faults.",
    invoke_without_command=True,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="tools.yaml (default: configs/tools.yaml)")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"viaform sim: {message}", err=True)
    return typer.Exit(code)


def _load(config: Path | None):
    try:
        return load_tools(config)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


@app.callback()
def run(
    ctx: typer.Context,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="start only this tool (repeatable)")
    ] = None,
    time_scale: Annotated[
        float | None, typer.Option("--time-scale", help="simulated s per wall s")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="address to listen on")] = None,
    config: ConfigOpt = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed")] = None,
) -> None:
    """Start one simulator per tool of tools.yaml (unless --only) and serve until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = _load(config)
    line = sim_line(cfg)
    for tool in only or []:
        if tool not in line:
            raise _fail(f"unknown tool {tool!r}; choose from {', '.join(line)}", 2)
    scale = cfg.time_scale if time_scale is None else time_scale
    if not scale > 0:
        raise _fail(f"--time-scale must be > 0, got {scale}", 2)
    bind = host or str(cfg.sim_control.get("host", "127.0.0.1"))
    try:
        asyncio.run(_serve(scale, bind, sim_ports(cfg), only or None, seed, line))
    except OSError as exc:
        raise _fail(f"cannot listen: {exc}") from None


async def _serve(
    scale: float,
    host: str,
    ports: dict[str, int],
    only: list[str] | None,
    seed: int | None,
    line: dict[str, str],
) -> None:
    stack = SimStack(scale, host=host, ports=ports, only=only, seed=seed, line=line)
    endpoints = await stack.start()
    typer.echo(f"viaform simulators, time scale {scale:g} (tool seconds per wall second)")
    for tool, ep in endpoints.items():
        typer.echo(f"  {tool:9s} " + "  ".join(f"{k} {_fmt(v)}" for k, v in ep.items()
                                               if k != "kind"))
    typer.echo("Ctrl-C to stop.", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await stack.stop()


def _fmt(value: Any) -> str:
    if isinstance(value, tuple | list) and len(value) == 2:
        return f"{value[0]}:{value[1]}"
    return str(value)


def _kind(tool: str, config: Path | None) -> str:
    """The kind of ``tool`` on the line of tools.yaml; exit 2 naming the tools if none."""
    line = sim_line(_load(config))
    if tool not in line:
        raise _fail(f"unknown tool {tool!r}; choose from {', '.join(line)}", 2)
    return line[tool]


def _client(config: Path | None) -> SimControlClient:
    return SimControlClient.from_config(_load(config))


@app.command()
def world(config: ConfigOpt = None) -> None:
    """Print the simulated world as JSON: every wafer's location and physical state."""
    try:
        typer.echo(json.dumps(_client(config).world(), indent=2))
    except SimControlError as exc:
        raise _fail(str(exc)) from None


@app.command()
def fault(
    tool: Annotated[str, typer.Argument(help="exposure | oven | etcher")],
    name: Annotated[str, typer.Argument(help="fault name (see `viaform sim faults`)")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="KEY=VALUE, e.g. delay_s=3")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Inject a fault into a running `viaform sim`."""
    kind = _kind(tool, config)
    if name not in known_faults(kind):
        raise _fail(
            f"unknown fault {name!r} for {tool}; known: {', '.join(sorted(known_faults(kind)))}", 2
        )
    params: dict[str, Any] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--param {item!r}: expected KEY=VALUE", 2)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    try:
        _client(config).inject(tool, name, **params)
    except SimControlError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{tool}: fault {name} on")


@app.command()
def clear(
    tool: Annotated[str, typer.Argument(help="exposure | oven | etcher")],
    name: Annotated[str | None, typer.Argument(help="fault to clear (default: all)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Clear one fault (or all) in a running `viaform sim`."""
    _kind(tool, config)
    try:
        _client(config).clear(tool, name)
    except SimControlError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{tool}: {'fault ' + name if name else 'all faults'} cleared")


@app.command()
def faults() -> None:
    """List the faults each simulated tool can be given."""
    for tool in TOOLS:
        typer.echo(f"{tool}:")
        for name, what in known_faults(tool).items():
            typer.echo(f"  {name:16s} {what}")
