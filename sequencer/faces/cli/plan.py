"""`viaform plan LOT… [--config tools.yaml] [--json]`: when will these lots be done?

The planner (``sequencer.runner.planner``) runs the scheduling policy on a virtual clock
over the line of tools.yaml, every tool replaced by its manual's timing: nothing is
sent to a tool and no journal is opened. It prints the predicted makespan, each lot's
completion, each wafer's step start and end per tool, and each tool's utilisation.

Bad input (a lot file, a tools file) is one line, exit 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.faces.cli.run import _lots
from sequencer.line.config import ConfigError, load_tools
from sequencer.runner.planner import Plan, plan
from sequencer.runner.steps import SequencerConfig


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"viaform plan: {message}", err=True)
    return typer.Exit(code)


def as_json(p: Plan, wall_s: float) -> dict[str, Any]:
    """The plan as JSON: times in tool seconds from the plan's start."""
    return {"makespan_s": round(p.makespan_s, 1), "planner_wall_s": round(wall_s, 4),
            "lots": {k: round(v, 1) for k, v in p.lot_end.items()},
            "utilisation": {k: round(v, 4) for k, v in p.utilisation.items()},
            "steps": [{"wafer_id": r.wafer_id, "lot_id": r.lot_id, "step": r.step,
                       "tool": r.tool, "start_s": round(r.start, 1), "end_s": round(r.end, 1)}
                      for r in p.steps]}


def _hm(seconds: float) -> str:
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}"


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_cmd(
        lotfiles: Annotated[list[Path], typer.Argument(help="lot file(s), in order",
                                                       show_default=False)],
        config: Annotated[Path | None, typer.Option("--config", help="tools.yaml")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    ) -> None:
        """Predict the makespan, each lot's completion and each wafer's steps (no tool is
        touched)."""
        try:
            cfg = load_tools(config)
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        lots = _lots(lotfiles)
        t0 = time.perf_counter()
        p = plan(lots, cfg.kinds, SequencerConfig.from_tools(cfg))
        wall = time.perf_counter() - t0
        if json_out:
            typer.echo(json.dumps(as_json(p, wall), indent=2))
            return
        typer.echo(f"makespan {_hm(p.makespan_s)} h:min ({p.makespan_s:.0f} tool s; planned "
                   f"in {wall:.2f} s)")
        for lot_id, end in p.lot_end.items():
            typer.echo(f"  lot {lot_id:12s} done at {_hm(end)}")
        typer.echo("utilisation: " + ", ".join(f"{t} {u:.0%}" for t, u in p.utilisation.items()))
        for r in p.steps:
            typer.echo(f"  {r.wafer_id:10s} {r.step:6s} {r.tool:12s} {_hm(r.start)} → "
                       f"{_hm(r.end)}")
