"""`viaform plan LOT… [--config tools.yaml] [--json]`, `viaform plan --daemon URL [--json]`:
when will these lots be done?

The planner (``sequencer.runner.planner``) runs the scheduling policy on a virtual clock
over the line of tools.yaml, every tool replaced by its manual's timing: nothing is
sent to a tool and no journal is opened. It prints the predicted makespan, each lot's
completion, each wafer's step start and end per tool, and each tool's utilisation.
With ``--daemon`` (and no lot files) it prints the running daemon's plan, made from the
line's current state with its lots in progress (``GET /plan``).

Bad input (a lot file, a tools file) is one line, exit 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.faces.cli.client import call, connect
from sequencer.faces.cli.run import _lots
from sequencer.line.config import ConfigError, load_tools
from sequencer.runner.planner import plan
from sequencer.runner.steps import SequencerConfig


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"viaform plan: {message}", err=True)
    return typer.Exit(code)


def _hm(seconds: float) -> str:
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}"


def _print(view: dict[str, Any], how: str) -> None:
    typer.echo(f"makespan {_hm(view['makespan_s'])} h:min ({view['makespan_s']:.0f} tool s; "
               f"{how})")
    for lot_id, end in view["lots"].items():
        typer.echo(f"  lot {lot_id:12s} done at {_hm(end)}")
    typer.echo("utilisation: " + ", ".join(f"{t} {u:.0%}"
                                           for t, u in view["utilisation"].items()))
    for r in view["steps"]:
        typer.echo(f"  {r['wafer_id']:10s} {r['step']:6s} {r['tool']:12s} "
                   f"{_hm(r['start_s'])} → {_hm(r['end_s'])}")


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_cmd(
        lotfiles: Annotated[list[Path] | None, typer.Argument(
            help="lot file(s), in order", show_default=False)] = None,
        config: Annotated[Path | None, typer.Option("--config", help="tools.yaml")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
        daemon: Annotated[str | None, typer.Option(
            "--daemon", help="the running daemon's plan of its line now (no lot files)")] = None,
    ) -> None:
        """Predict the makespan, each lot's completion and each wafer's steps (no tool is
        touched)."""
        if daemon is not None:
            if lotfiles:
                raise _fail("--daemon plans the daemon's own lots: give no lot files")
            client = connect(daemon, config, required=True)
            assert client is not None
            view = call(client, "GET", "/plan")
            if json_out:
                typer.echo(json.dumps(view, indent=2))
            elif view.get("planned_at") is None:
                typer.echo("the daemon has no plan yet (no lot has run since it started)")
            else:
                at = time.strftime("%H:%M:%S", time.localtime(view["planned_at"]))
                _print(view, f"the daemon's plan made at {at}")
            return
        if not lotfiles:
            raise _fail("name the lot file(s) to plan, or --daemon URL")
        try:
            cfg = load_tools(config)
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        lots = _lots(lotfiles)
        t0 = time.perf_counter()
        p = plan(lots, cfg.kinds, SequencerConfig.from_tools(cfg))
        wall = time.perf_counter() - t0
        view = {**p.to_json(), "planner_wall_s": round(wall, 4)}
        if json_out:
            typer.echo(json.dumps(view, indent=2))
            return
        _print(view, f"planned in {wall:.2f} s")
